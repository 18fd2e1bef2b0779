"""SqlStore: the whole Store contract on SQLAlchemy Core, for SQLite (default) and PostgreSQL."""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager, nullcontext

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.model import Session
from bot.store.base import Claim, Store, TurnRecord
from bot.store.prepared import HotPath, WriterQueue, held_where, state_text, state_value
from bot.store.schema import (SCHEMA_LOCK, hits, make_engine, messages, metadata, outbox_table,
                              session_from_state, session_state, sessions, tickets, tokens,
                              transcript, unanswered, users)
from bot.store.sql_conversation import ConversationTables
from bot.store.sql_desk import TicketTables
from bot.store.stamps import SqlStamps

log = logging.getLogger(__name__)


class SqlStore(ConversationTables, TicketTables, SqlStamps, Store):
    """The Store on one SQL database; every multi-row change is one transaction."""

    def __init__(self, url: str):
        """Connect and create the schema (safe when several workers start at once)."""
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        self._insert = pg_insert if self.dialect == "postgresql" else sqlite_insert
        self.hot = HotPath(self.engine.dialect)
        in_memory = self.dialect == "sqlite" and self.engine.url.database in (None, "", ":memory:")
        self._lock = threading.RLock() if in_memory else nullcontext()
        on_disk = self.dialect == "sqlite" and not in_memory
        self._write_lock = WriterQueue(self.engine.url.database + ".lock") if on_disk else nullcontext()
        with self._tx(write=True) as conn:
            self._advisory_lock(conn, SCHEMA_LOCK)
            metadata.create_all(conn)
        log.info("store: %s ready", self.engine.url.render_as_string(hide_password=True))

    def close(self) -> None:
        """Release all pooled connections."""
        self.engine.dispose()

    @contextmanager
    def _tx(self, write: bool = False):
        """One transaction; on SQLite a writer takes the write lock at BEGIN."""
        with self._lock, (self._write_lock if write else nullcontext()), self.engine.connect() as conn:
            with conn.execution_options(immediate=write).begin():
                yield conn

    def _advisory_lock(self, conn, key: int) -> None:
        """PostgreSQL: hold a transaction-scoped advisory lock (SQLite's BEGIN IMMEDIATE suffices)."""
        if self.dialect == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(key)))

    def _upsert(self, conn, table: Table, key: dict, values: dict) -> None:
        """Insert or update the row identified by `key`."""
        stmt = self._insert(table).values(**key, **values)
        conn.execute(stmt.on_conflict_do_update(index_elements=list(key), set_=values))

    # -- dedupe --
    def claim_message(self, key: str, now: float, lease: float = 4.0) -> Claim:
        """Claim `key`; a claim older than `lease` without a reply may be taken over."""
        with self._tx(write=True) as conn:
            return self._claim(conn, key, now, lease)

    def begin_turn(self, key: str, user: str, now: float, lease: float = 4.0) -> tuple[Claim, Session, bool]:
        """Claim the message and load the user's state in one transaction."""
        with self._tx(write=True) as conn:
            claim = self._claim(conn, key, now, lease)
            if claim.status != "new":
                return claim, Session(), False
            return (claim, *self._load(conn, user))

    def _claim(self, conn, key: str, now: float, lease: float) -> Claim:
        """The claim logic on an open write transaction."""
        hot = self.hot
        if hot.claim.first(conn, key=key, now=now) is not None:
            return Claim("new")
        status, reply, claimed_at = hot.claimed.first(conn, key=key)
        if status == "done":
            return Claim("done", reply)
        if now - (claimed_at or 0.0) < lease:
            return Claim("busy")
        if not hot.take_over.run(conn, key=key, old=claimed_at, now=now).rowcount:
            return Claim("busy")
        log.warning("store: took over stale claim on message %s", key)
        return Claim("new")

    def finish_message(self, key: str, reply: str, now: float) -> None:
        """Store the reply for `key` so retries get the same answer."""
        with self._tx(write=True) as conn:
            self._upsert(conn, messages, {"key": key}, {"status": "done", "reply": reply, "done_at": now})

    def purge_messages(self, older_than: float) -> int:
        """Delete processed-message rows older than the given epoch time."""
        with self._tx(write=True) as conn:
            when = func.coalesce(messages.c.done_at, messages.c.claimed_at)
            return conn.execute(delete(messages).where(when < older_than)).rowcount

    # -- one message, batched --
    def load_turn(self, user: str) -> tuple[Session, bool]:
        """Session, remembered tax ID and whether held messages wait: one statement."""
        with self._tx() as conn:
            return self._load(conn, user)

    def _load(self, conn, user: str) -> tuple[Session, bool]:
        """Session, tax ID and held flag on an open transaction."""
        state, tax_id, held = self.hot.load.first(conn, user=user)
        return session_from_state(state_value(state), tax_id or ""), bool(held)

    def finish_turn(self, turn: TurnRecord) -> None:
        """Everything a handled message writes, in one write transaction."""
        hot, user, at = self.hot, turn.user, turn.now
        with self._tx(write=True) as conn:
            if turn.lines:
                hot.transcript.run_many(conn, [{"user": user, "direction": d, "text": t, "at": at}
                                               for d, t in turn.lines])
            if turn.hits:
                hot.hit.run_many(conn, [{"intent": intent, "at": at} for intent in turn.hits])
            if turn.unanswered:
                hot.unanswered.run_many(conn, [{"user": user, "text": t, "at": at} for t in turn.unanswered])
            if turn.end_session:
                hot.end_session.run(conn, user=user)
            elif turn.session is not None:
                hot.save_session.run(conn, user=user, state=state_text(session_state(turn.session)),
                                     updated_at=turn.session.updated_at)
            if turn.key:
                hot.finish.run(conn, key=turn.key, status="done", reply=turn.reply, done_at=at)

    def has_held(self, user: str) -> bool:
        """True when customer messages are held for this user's next passive reply."""
        with self._tx() as conn:
            return conn.execute(select(outbox_table.c.id).where(*held_where(user)).limit(1)).first() is not None

    # -- sessions + tax ID --
    def get_tax_id(self, user: str) -> str:
        """The user's remembered tax ID, or ""."""
        with self._tx() as conn:
            return conn.execute(select(users.c.tax_id).where(users.c.user == user)).scalar() or ""

    def load_session(self, user: str) -> Session:
        """Conversation state merged with the user's remembered tax ID."""
        with self._tx() as conn:
            state = conn.execute(select(sessions.c.state).where(sessions.c.user == user)).scalar()
            tax_id = conn.execute(select(users.c.tax_id).where(users.c.user == user)).scalar()
        return session_from_state(state, tax_id or "")

    def save_session(self, user: str, session: Session) -> None:
        """Persist the conversation state (not the tax ID: see remember_tax_id)."""
        with self._tx(write=True) as conn:
            self._upsert(conn, sessions, {"user": user},
                         {"state": session_state(session), "updated_at": session.updated_at})

    def end_session(self, user: str) -> None:
        """Delete the conversation state."""
        with self._tx(write=True) as conn:
            conn.execute(delete(sessions).where(sessions.c.user == user))

    def remember_tax_id(self, user: str, tax_id: str) -> None:
        """Remember the customer's tax ID."""
        with self._tx(write=True) as conn:
            self._upsert(conn, users, {"user": user}, {"tax_id": tax_id, "updated_at": time.time()})

    def forget_tax_id(self, user: str) -> None:
        """Forget the customer's tax ID."""
        with self._tx(write=True) as conn:
            conn.execute(delete(users).where(users.c.user == user))

    # -- transcript --
    def log_message(self, user: str, direction: str, text: str, now: float) -> None:
        """Append one line ("in"/"out") to the user's transcript."""
        with self._tx(write=True) as conn:
            conn.execute(insert(transcript).values(user=user, direction=direction, text=text, at=now))

    def recent_messages(self, user: str, limit: int = 10) -> list[dict]:
        """Last `limit` transcript lines, oldest first: {"direction", "text", "at"}."""
        query = (select(transcript.c.direction, transcript.c.text, transcript.c.at)
                 .where(transcript.c.user == user).order_by(transcript.c.id.desc()).limit(limit))
        with self._tx() as conn:
            rows = conn.execute(query).mappings().all()
        return [dict(row) for row in reversed(rows)]

    # -- analytics --
    def log_unanswered(self, user: str, text: str, now: float) -> None:
        """Record a question nothing answered."""
        with self._tx(write=True) as conn:
            conn.execute(insert(unanswered).values(user=user, text=text, at=now))

    def log_hit(self, intent: str, now: float) -> None:
        """Count an answered intent."""
        with self._tx(write=True) as conn:
            conn.execute(insert(hits).values(intent=intent, at=now))

    def report(self) -> dict:
        """{"unanswered": [{"text", "count", "last_at"}], "hits": {intent: n}, "tickets": {status: n}}."""
        count, last = func.count().label("count"), func.max(unanswered.c.at).label("last_at")
        with self._tx() as conn:
            asked = conn.execute(select(unanswered.c.text, count, last).group_by(unanswered.c.text)
                                 .order_by(count.desc(), last.desc(), unanswered.c.text)).mappings().all()
            hit = conn.execute(select(hits.c.intent, func.count()).group_by(hits.c.intent)).all()
            states = conn.execute(select(tickets.c.status, func.count()).group_by(tickets.c.status)).all()
            queued = conn.execute(select(outbox_table.c.target, outbox_table.c.status, func.count())
                                  .group_by(outbox_table.c.target, outbox_table.c.status)).all()
        return {"unanswered": [dict(row) for row in asked], "hits": dict(hit), "tickets": dict(states),
                "outbox": {f"{target}:{status}": n for target, status, n in queued}}

    # -- shared tokens --
    def get_token(self, name: str, now: float) -> str | None:
        """A cached token that is still valid at `now`, else None."""
        with self._tx() as conn:
            value = conn.execute(select(tokens.c.value).where(tokens.c.name == name,
                                                              tokens.c.expires_at > now)).scalar()
        return value or None

    def put_token(self, name: str, value: str, expires_at: float) -> None:
        """Cache a token until expires_at."""
        with self._tx(write=True) as conn:
            self._upsert(conn, tokens, {"name": name}, {"value": value, "expires_at": expires_at})
