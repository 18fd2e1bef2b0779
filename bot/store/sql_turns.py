"""One message on SQL: a read, then one write transaction that claims the message and keeps its outcome.

The claim is the first statement of the write transaction, so a WeChat retry that arrives while
the first attempt runs is settled there: SQLite's writer lock (PostgreSQL: the unique key's row
lock) makes the later attempt wait for the first commit and then return its reply without running
the performers. No claim is ever committed without its reply, so there is nothing to take over.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Callable

from sqlalchemy import delete, func, select

from bot.model import Session
from bot.store.base import CLAIM_LEASE_SECONDS, TurnRecord, TurnWriter
from bot.store.codec import decode_session, encode_session
from bot.store.console_schema import clarified
from bot.store.schema import messages, transcript
from bot.store.sql_desk import SqlOutbox, SqlTickets
from bot.store.gauges import HIT_PREFIX

if TYPE_CHECKING:
    from bot.store.sql import Db

log = logging.getLogger(__name__)


def recent_lines(conn, user: str, limit: int) -> list[dict]:
    """The user's last `limit` transcript lines, oldest first."""
    query = (select(transcript.c.direction, transcript.c.text, transcript.c.at)
             .where(transcript.c.user == user).order_by(transcript.c.id.desc()).limit(limit))
    return [dict(row) for row in reversed(conn.execute(query).mappings().all())]


class SqlWriter:
    """The performers' view of a message's open write transaction."""

    def __init__(self, db: Db, user: str):
        """`db` bound to the open transaction; `user` whose message this is."""
        self.db, self.user = db, user

    @property
    def tickets(self) -> SqlTickets:
        """Tickets inside this transaction."""
        return SqlTickets(self.db)

    @property
    def outbox(self) -> SqlOutbox:
        """The outbox inside this transaction."""
        return SqlOutbox(self.db)

    def transcript(self, limit: int) -> list[dict]:
        """The user's last `limit` transcript lines, oldest first."""
        return recent_lines(self.db._conn, self.user, limit)


def write_record(db: Db, conn, user: str, now: float, record: TurnRecord, *, state: bool, key: str) -> None:
    """A message's transcript, analytics, tax ID and (`state`) conversation state and (`key`) reply."""
    hot = db.hot
    if record.lines:
        hot.transcript.run_many(conn, [{"user": user, "direction": d, "text": t, "at": now}
                                       for d, t in record.lines])
    if record.hits:
        hot.hit.run_many(conn, [{"intent": intent, "at": now} for intent in record.hits])
        hot.bump.run_many(conn, [{"name": HIT_PREFIX + intent} for intent in record.hits])
    if record.unanswered:
        hot.unanswered.run_many(conn, [{"user": user, "text": t, "at": now} for t in record.unanswered])
    if record.clarified:
        conn.execute(clarified.insert(), [{"user": user, "text": t, "at": now} for t in record.clarified])
    if record.tax_id:
        hot.remember.run(conn, user=user, tax_id=record.tax_id, updated_at=now)
    elif record.tax_id == "":
        hot.forget.run(conn, user=user)
    if state and record.end_session:
        hot.end_session.run(conn, user=user)
    elif state and record.session is not None:
        hot.save_session.run(conn, user=user, state=encode_session(record.session),
                             updated_at=record.session.updated_at)
    if key:
        hot.finish.run(conn, key=key, status="done", reply=record.reply, done_at=now)


class SqlTurn:
    """One message on SQL (see the module docstring)."""

    def __init__(self, db: Db, key: str, user: str, now: float, loaded: tuple, conn=None):
        """The loaded row (state, tax ID, held flag, stored reply); `conn` = an open transaction to reuse."""
        state, tax_id, held, reply = loaded
        self.db, self.key, self.user, self.now, self.conn = db, key, user, now, conn
        self.status, self.reply = ("done", reply) if reply is not None else ("new", None)
        self.session = decode_session(state, tax_id) if reply is None else Session()
        self.held = bool(held)

    def commit(self, work: Callable[[TurnWriter], TurnRecord]) -> str:
        """Claim, run `work`, write its record: one transaction (see the module docstring)."""
        with nullcontext(self.conn) if self.conn is not None else self.db.tx(write=True) as conn:
            if self.key and self.db.hot.claim.first(conn, key=self.key, now=self.now) is None:
                status, reply = self.db.hot.claimed.first(conn, key=self.key)
                if status == "done":
                    log.info("dedupe: %s was answered by a concurrent attempt", self.key)
                    return reply
            record = work(SqlWriter(self.db.on(conn), self.user))
            write_record(self.db, conn, self.user, self.now, record, state=True, key=self.key)
        return record.reply


class SqlTurns:
    """Turns, dedupe and transcript on SQL."""

    def __init__(self, db: Db):
        """Turns on `db`."""
        self.db = db

    @contextmanager
    def turn(self, key: str, user: str, now: float, lease: float = CLAIM_LEASE_SECONDS):
        """Read the user's state (and a stored reply); on PostgreSQL the write joins the same transaction."""
        if self.db.reads_in_write:
            with self.db.tx(write=True) as conn:
                yield SqlTurn(self.db, key, user, now, self.db.hot.load.first(conn, key=key, user=user), conn)
            return
        with self.db.tx() as conn:
            loaded = self.db.hot.load.first(conn, key=key, user=user)
        yield SqlTurn(self.db, key, user, now, loaded)

    def recent_messages(self, user: str, limit: int = 10) -> list[dict]:
        """Last `limit` transcript lines, oldest first: {"direction", "text", "at"}."""
        with self.db.tx() as conn:
            return recent_lines(conn, user, limit)

    def purge_messages(self, older_than: float) -> int:
        """Delete dedupe rows older than the given epoch time."""
        with self.db.tx(write=True) as conn:
            when = func.coalesce(messages.c.done_at, messages.c.claimed_at)
            return conn.execute(delete(messages).where(when < older_than)).rowcount
