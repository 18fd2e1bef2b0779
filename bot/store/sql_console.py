"""The console's parts (bot/store/console.py) on SQL: operators, console sessions, the login
throttle, ticket search and the insight rows."""
from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING

from sqlalchemy import and_, case, delete, func, or_, select, update

from bot.store.console import ConsoleSession, ConsoleStore, Operator, TicketPage, TicketQuery
from bot.store.console_schema import clarified, console_sessions, login_failures, operators
from bot.store.schema import hits, tickets, unanswered
from bot.store.sql_desk import select_tickets

if TYPE_CHECKING:
    from bot.store.sql import Db

TICKET_NUMBER = re.compile(r"[Tt]?0*(\d{1,9})")
LIKE_SPECIAL = str.maketrans({"\\": "\\\\", "%": "\\%", "_": "\\_"})


class SqlOperators:
    """Ops accounts in the operators table."""

    def __init__(self, db: Db):
        """Accounts of `db`."""
        self.db = db

    def put(self, name: str, password_hash: str, now: float) -> None:
        """Create the account or set its password."""
        with self.db.tx(write=True) as conn:
            self.db.upsert(conn, operators, {"name": name}, {"password_hash": password_hash, "created_at": now})

    def get(self, name: str) -> Operator | None:
        """The account, or None."""
        with self.db.tx() as conn:
            row = conn.execute(select(operators).where(operators.c.name == name)).first()
        return Operator(row.name, row.password_hash, row.created_at or 0.0) if row else None

    def list(self) -> list[Operator]:
        """Every stored account, by name."""
        with self.db.tx() as conn:
            rows = conn.execute(select(operators).order_by(operators.c.name)).all()
        return [Operator(r.name, r.password_hash, r.created_at or 0.0) for r in rows]

    def remove(self, name: str) -> bool:
        """Delete the account and end its sessions; False when there was none."""
        with self.db.tx(write=True) as conn:
            conn.execute(delete(console_sessions).where(console_sessions.c.operator == name))
            return bool(conn.execute(delete(operators).where(operators.c.name == name)).rowcount)


class SqlConsoleSessions:
    """Logged-in browsers in the console_sessions table."""

    def __init__(self, db: Db):
        """Sessions of `db`."""
        self.db = db

    def open(self, token_hash: str, operator: str, csrf: str, now: float) -> None:
        """Remember a new logged-in browser."""
        with self.db.tx(write=True) as conn:
            conn.execute(console_sessions.insert().values(token_hash=token_hash, operator=operator,
                                                          csrf=csrf, created_at=now, last_seen=now))

    def get(self, token_hash: str, now: float, idle_seconds: float, max_age: float) -> ConsoleSession | None:
        """The live session, or None (an idle or too old one is deleted); marks it seen at `now`."""
        mine = console_sessions.c.token_hash == token_hash
        with self.db.tx(write=True) as conn:
            row = conn.execute(select(console_sessions).where(mine)).first()
            if row is None:
                return None
            if now - row.last_seen > idle_seconds or now - row.created_at > max_age:
                conn.execute(delete(console_sessions).where(mine))
                return None
            conn.execute(update(console_sessions).where(mine).values(last_seen=now))
        return ConsoleSession(row.operator, row.csrf, row.created_at, now)

    def close(self, token_hash: str) -> None:
        """Log this browser out."""
        with self.db.tx(write=True) as conn:
            conn.execute(delete(console_sessions).where(console_sessions.c.token_hash == token_hash))

    def close_all(self, operator: str) -> int:
        """Log the operator out everywhere; how many sessions ended."""
        with self.db.tx(write=True) as conn:
            return conn.execute(delete(console_sessions).where(console_sessions.c.operator == operator)).rowcount


class SqlLoginThrottle:
    """Failed logins in the login_failures table."""

    def __init__(self, db: Db):
        """The throttle of `db`."""
        self.db = db

    def record(self, scopes: tuple[str, ...], now: float, forget_before: float) -> None:
        """Count one failure for each scope; failures older than `forget_before` are dropped."""
        with self.db.tx(write=True) as conn:
            conn.execute(delete(login_failures).where(login_failures.c.at < forget_before))
            conn.execute(login_failures.insert(), [{"scope": scope, "at": now} for scope in scopes])

    def failures(self, scopes: tuple[str, ...], since: float) -> dict[str, list[float]]:
        """Times of each scope's failures since `since`, oldest first."""
        cols = login_failures.c
        query = select(cols.scope, cols.at).where(cols.scope.in_(scopes), cols.at >= since).order_by(cols.at, cols.id)
        found: dict[str, list[float]] = {}
        with self.db.tx() as conn:
            for scope, at in conn.execute(query):
                found.setdefault(scope, []).append(at)
        return found

    def clear(self, scopes: tuple[str, ...]) -> None:
        """Forget the scopes' failures (after a good login)."""
        with self.db.tx(write=True) as conn:
            conn.execute(delete(login_failures).where(login_failures.c.scope.in_(scopes)))


def _like(text: str) -> str:
    """A LIKE pattern matching `text` anywhere (wildcards in it taken literally)."""
    return f"%{text.translate(LIKE_SPECIAL)}%"


def search_clause(text: str):
    """WHERE clause for the list's search box: ticket number, tax ID (any part) or words."""
    text = unicodedata.normalize("NFKC", text).strip()
    compact = re.sub(r"[\s-]", "", text).upper()
    clauses = [tickets.c.words.like(_like(text), escape="\\")]
    if compact:
        clauses.append(tickets.c.tax_id.like(_like(compact), escape="\\"))
    number = TICKET_NUMBER.fullmatch(compact)
    if number:
        clauses.append(tickets.c.id == int(number.group(1)))
    return or_(*clauses)


def query_clauses(query: TicketQuery) -> list:
    """Every filter of a TicketQuery as WHERE clauses."""
    cols = tickets.c
    where = [col == value for col, value in ((cols.status, query.status), (cols.kind, query.kind),
                                             (cols.intent, query.intent)) if value]
    if query.since is not None:
        where.append(cols.created_at >= query.since)
    if query.until is not None:
        where.append(cols.created_at < query.until)
    if query.text.strip():
        where.append(search_clause(query.text))
    return where


class SqlTicketSearch:
    """The console's ticket list over the tickets table."""

    def __init__(self, db: Db):
        """Search in `db`."""
        self.db = db

    def search(self, query: TicketQuery) -> TicketPage:
        """Tickets matching the query, open first, newest first, one page; `total` counts all matches."""
        where = query_clauses(query)
        resolved_last = case((tickets.c.status == "resolved", 1), else_=0)
        with self.db.tx() as conn:
            total = conn.execute(select(func.count()).select_from(tickets).where(*where)).scalar_one()
            ids = conn.execute(select(tickets.c.id).where(*where)
                               .order_by(resolved_last, tickets.c.created_at.desc(), tickets.c.id.desc())
                               .offset(max(0, query.offset)).limit(max(1, query.limit))).scalars().all()
            found = {t.id: t for t in select_tickets(conn, tickets.c.id.in_(ids), order=False)} if ids else {}
        return TicketPage([found[i] for i in ids], total)


class SqlInsight:
    """Raw rows for the insight page from the tickets and analytics tables."""

    def __init__(self, db: Db):
        """Insight on `db`."""
        self.db = db

    def rows(self, since: float, until: float, top: int = 10) -> dict:
        """Within [since, until): see InsightRows."""
        def within(col):
            """since <= col < until."""
            return and_(col >= since, col < until)
        count, last = func.count().label("count"), func.max(unanswered.c.at).label("last_at")
        spans = select(tickets.c.created_at, tickets.c.resolved_at)
        with self.db.tx() as conn:
            opened = conn.execute(spans.where(within(tickets.c.created_at))).all()
            done = conn.execute(spans.where(within(tickets.c.resolved_at))).all()
            hit = conn.execute(select(hits.c.at, hits.c.intent).where(within(hits.c.at))).all()
            asked = conn.execute(select(clarified.c.at).where(within(clarified.c.at))).scalars().all()
            missed = conn.execute(select(unanswered.c.at).where(within(unanswered.c.at))).scalars().all()
            frequent = conn.execute(select(unanswered.c.text, count, last).where(within(unanswered.c.at))
                                    .group_by(unanswered.c.text)
                                    .order_by(count.desc(), last.desc(), unanswered.c.text).limit(top))
            top_rows = [dict(row) for row in frequent.mappings()]
        return {"tickets": [tuple(r) for r in opened], "resolved": [tuple(r) for r in done],
                "hits": [tuple(r) for r in hit], "clarified": list(asked), "unanswered": list(missed),
                "top_unanswered": top_rows}


def sql_console(db: Db) -> ConsoleStore:
    """Every console part on one SQL database."""
    return ConsoleStore(operators=SqlOperators(db), sessions=SqlConsoleSessions(db),
                        throttle=SqlLoginThrottle(db), tickets=SqlTicketSearch(db), insight=SqlInsight(db))
