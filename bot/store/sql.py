"""SqlStore: the whole Store contract on SQLAlchemy Core, for SQLite (default) and PostgreSQL."""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from typing import Callable

from sqlalchemy import Table, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.model import Session, Ticket
from bot.store.base import Claim, OutboxRow, Store, TurnRecord
from bot.store.prepared import HotPath, WriterQueue, state_text, state_value
from bot.store.schema import (attachments, hits, make_engine, messages, metadata, outbox_row,
                              outbox_table, session_from_state, session_state, sessions,
                              ticket_events, tickets, tokens, transcript, unanswered, users)

log = logging.getLogger(__name__)

SCHEMA_LOCK = 0x6C65716973746F72  # pg advisory lock key for create_all ("leqistor")
OPS_LOCK = SCHEMA_LOCK + 1  # serialises the robot's per-minute budget
TARGETS = ("ops", "customer")

class SqlStore(Store):
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

    @staticmethod
    def _held(user: str) -> tuple:
        """WHERE clauses of a user's held customer messages."""
        return (outbox_table.c.user == user, outbox_table.c.target == "customer",
                outbox_table.c.status == "held")

    def has_held(self, user: str) -> bool:
        """True when customer messages are held for this user's next passive reply."""
        with self._tx() as conn:
            return conn.execute(select(outbox_table.c.id).where(*self._held(user)).limit(1)).first() is not None

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

    # -- tickets --
    def _tickets(self, conn, *where, order=True) -> list[Ticket]:
        """Tickets matching `where` with their attachments, newest first."""
        query = select(tickets).where(*where)
        if order:
            query = query.order_by(tickets.c.created_at.desc(), tickets.c.id.desc())
        rows = conn.execute(query).all()
        media: dict[int, list[str]] = {row.id: [] for row in rows}
        if media:
            found = conn.execute(select(attachments.c.ticket_id, attachments.c.media)
                                 .where(attachments.c.ticket_id.in_(media)).order_by(attachments.c.id))
            for ticket_id, item in found:
                media[ticket_id].append(item)
        return [Ticket(id=r.id, user=r.user, kind=r.kind, intent=r.intent, status=r.status,
                       tax_id=r.tax_id or "", flags=tuple(r.flags or ()), words=r.words or "",
                       channel=r.channel, created_at=r.created_at, resolved_at=r.resolved_at,
                       attachments=tuple(media[r.id])) for r in rows]

    def _queue(self, conn, rows: list[dict], ticket_id: int | None, user: str, now: float) -> list[int]:
        """Insert outbox rows (target, user, payload[, next_at]) as pending; their ids."""
        ids = []
        for row in rows:
            if row.get("target") not in TARGETS or not isinstance(row.get("payload"), dict):
                raise ValueError(f"outbox row needs a target in {TARGETS} and a dict payload: {row!r:.200}")
            ids.append(conn.execute(insert(outbox_table).values(
                target=row["target"], user=row.get("user") or user, payload=row["payload"],
                ticket_id=ticket_id, status="pending", attempts=0, next_at=row.get("next_at", now),
                created_at=now).returning(outbox_table.c.id)).scalar_one())
        return ids

    @staticmethod
    def _event(conn, ticket_id: int, at: float, kind: str, detail: str = "") -> None:
        """Append a ticket_events row."""
        conn.execute(insert(ticket_events).values(ticket_id=ticket_id, at=at, kind=kind, detail=detail))

    def create_ticket(self, ticket: Ticket, source_key: str,
                      outbox: list[dict] | Callable[[Ticket], list[dict]]) -> tuple[Ticket, bool]:
        """Insert the ticket and its outbox rows in one transaction, idempotent on source_key."""
        values = dict(user=ticket.user, kind=ticket.kind, intent=ticket.intent, status=ticket.status,
                      tax_id=ticket.tax_id, flags=list(ticket.flags), words=ticket.words,
                      channel=ticket.channel, source_key=source_key, created_at=ticket.created_at)
        stmt = self._insert(tickets).values(**values).on_conflict_do_nothing(index_elements=["source_key"])
        with self._tx(write=True) as conn:
            new_id = conn.execute(stmt.returning(tickets.c.id)).scalar()
            if new_id is None:
                return self._tickets(conn, tickets.c.source_key == source_key)[0], False
            created = self._tickets(conn, tickets.c.id == new_id)[0]
            rows = outbox(created) if callable(outbox) else outbox
            self._queue(conn, rows, new_id, ticket.user, ticket.created_at)
            self._event(conn, new_id, ticket.created_at, "created", f"{ticket.kind} {ticket.intent}")
        log.info("store: ticket %s created for %s (%d outbox rows)", created.number, ticket.user, len(rows))
        return created, True

    def get_ticket(self, ticket_id: int) -> Ticket | None:
        """One ticket or None."""
        with self._tx() as conn:
            found = self._tickets(conn, tickets.c.id == ticket_id, order=False)
        return found[0] if found else None

    def list_tickets(self, status: str | None = None, user: str | None = None) -> list[Ticket]:
        """Tickets, newest first, optionally filtered."""
        where = [col == value for col, value in ((tickets.c.status, status), (tickets.c.user, user))
                 if value is not None]
        with self._tx() as conn:
            return self._tickets(conn, *where)

    def resolve_ticket(self, ticket_id: int, now: float, outbox: list[dict]) -> Ticket | None:
        """Mark resolved and queue `outbox` in the same transaction; no-op if already resolved."""
        with self._tx(write=True) as conn:
            open_ = tickets.c.status != "resolved"
            changed = conn.execute(update(tickets).where(tickets.c.id == ticket_id, open_)
                                   .values(status="resolved", resolved_at=now)).rowcount
            found = self._tickets(conn, tickets.c.id == ticket_id, order=False)
            if changed:
                self._queue(conn, outbox, ticket_id, found[0].user, now)
                self._event(conn, ticket_id, now, "resolved")
        return found[0] if found else None

    def attach_to_ticket(self, ticket_id: int, media: str, now: float, outbox: list[dict]) -> Ticket:
        """Attach a media reference, reopen if resolved, queue `outbox`; one transaction."""
        with self._tx(write=True) as conn:
            found = self._tickets(conn, tickets.c.id == ticket_id, order=False)
            if not found:
                raise KeyError(f"no ticket {ticket_id}")
            conn.execute(insert(attachments).values(ticket_id=ticket_id, media=media, at=now))
            self._event(conn, ticket_id, now, "attached", media)
            if found[0].status == "resolved":
                conn.execute(update(tickets).where(tickets.c.id == ticket_id)
                             .values(status="open", resolved_at=None))
                self._event(conn, ticket_id, now, "reopened")
            self._queue(conn, outbox, ticket_id, found[0].user, now)
            return self._tickets(conn, tickets.c.id == ticket_id, order=False)[0]

    def ticket_events(self, ticket_id: int) -> list[dict]:
        """History of a ticket: {"at", "kind", "detail"}."""
        cols = ticket_events.c
        query = (select(cols.at, cols.kind, cols.detail).where(cols.ticket_id == ticket_id)
                 .order_by(cols.at, cols.id))
        with self._tx() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    # -- outbox --
    def queue_message(self, row: dict, ticket_id: int | None, now: float) -> int:
        """Queue one outbox row (target, user, payload) outside ticket creation; returns its id."""
        with self._tx(write=True) as conn:
            return self._queue(conn, [row], ticket_id, row.get("user") or "", now)[0]

    def _ops_budget(self, conn, now: float, per_minute: int) -> int:
        """How many ops rows the robot may still take this minute (sent in 60 s or in flight)."""
        self._advisory_lock(conn, OPS_LOCK)
        cols = outbox_table.c
        recent = (cols.status == "sent") & (cols.sent_at > now - 60)
        used = conn.execute(select(func.count()).select_from(outbox_table).where(
            cols.target == "ops", or_(cols.status == "sending", recent))).scalar_one()
        return max(0, per_minute - used)

    def claim_outbox(self, now: float, limit: int = 10, target: str | None = None,
                     *, ops_per_minute: int = 20) -> list[OutboxRow]:
        """Atomically move due pending rows to `sending`; no row is ever claimed twice."""
        if target is not None and target not in TARGETS:
            raise ValueError(f"unknown outbox target {target!r}")
        with self._tx(write=True) as conn:
            rows = []
            for kind in (target,) if target else TARGETS:
                room = min(limit, self._ops_budget(conn, now, ops_per_minute)) if kind == "ops" else limit
                rows += self._due(conn, kind, now, room) if room > 0 else []
            rows = sorted(rows, key=lambda r: (r.next_at, r.id))[:limit]
            if rows:
                conn.execute(update(outbox_table).where(outbox_table.c.id.in_([r.id for r in rows]))
                             .values(status="sending", claimed_at=now))
        return [replace(outbox_row(r), status="sending") for r in rows]

    @staticmethod
    def _due(conn, target: str, now: float, limit: int) -> list:
        """Lock up to `limit` due pending rows for `target`, skipping rows another worker holds."""
        cols = outbox_table.c
        return conn.execute(
            select(outbox_table).where(cols.status == "pending", cols.target == target, cols.next_at <= now)
            .order_by(cols.next_at, cols.id).limit(limit).with_for_update(skip_locked=True)).all()

    def _set_outbox(self, row_id: int, **values) -> None:
        """Update one outbox row."""
        with self._tx(write=True) as conn:
            conn.execute(update(outbox_table).where(outbox_table.c.id == row_id).values(**values))

    def outbox_sent(self, row_id: int, now: float) -> None:
        """Mark a row delivered."""
        self._set_outbox(row_id, status="sent", sent_at=now)

    def outbox_retry(self, row_id: int, next_at: float, error: str) -> None:
        """Back to pending, due at next_at, attempts + 1."""
        self._set_outbox(row_id, status="pending", next_at=next_at, last_error=error,
                         attempts=outbox_table.c.attempts + 1)

    def outbox_dead(self, row_id: int, error: str) -> None:
        """Give up on a row (kept for ops to see)."""
        self._set_outbox(row_id, status="dead", last_error=error, attempts=outbox_table.c.attempts + 1)

    def outbox_hold(self, row_id: int, error: str) -> None:
        """Customer window closed: keep for delivery with the customer's next passive reply."""
        self._set_outbox(row_id, status="held", last_error=error)

    def take_held(self, user: str, now: float) -> list[OutboxRow]:
        """Atomically take (mark sent) the user's held customer messages."""
        stmt = (update(outbox_table).where(*self._held(user))
                .values(status="sent", sent_at=now).returning(*outbox_table.c))
        with self._tx(write=True) as conn:
            rows = conn.execute(stmt).all()
        return sorted((outbox_row(r) for r in rows), key=lambda r: r.id)

    def requeue_stale_sending(self, older_than: float) -> int:
        """Rows stuck in `sending` (a killed worker) go back to pending."""
        stale = (outbox_table.c.status == "sending") & (outbox_table.c.claimed_at < older_than)
        with self._tx(write=True) as conn:
            return conn.execute(update(outbox_table).where(stale).values(status="pending")).rowcount

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
