"""One message on SQL: a read, then one write transaction that claims the message and keeps its outcome.

The claim is the first statement of the write transaction, so a WeChat retry that arrives while
the first attempt runs is settled there: SQLite's writer lock (PostgreSQL: the unique key's row
lock) makes the later attempt wait for the first commit and then return its reply without running
the performers. No claim is ever committed without its reply, so there is nothing to take over.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable

from sqlalchemy import delete, func

from bot.model import Replay, Session, Stamp
from bot.store.base import CLAIM_LEASE_SECONDS, TurnRecord, TurnWriter
from bot.store.codec import decode_session, encode_session
from bot.store.schema import messages, stamps
from bot.store.sql_conversation import SqlConversations
from bot.store.sql_desk import SqlOutbox, SqlTickets
from bot.store.gauges import HIT_PREFIX

if TYPE_CHECKING:
    from bot.store.sql import Db

log = logging.getLogger(__name__)


def recent_lines(db: Db, conn, user: str, limit: int) -> list[dict]:
    """The user's last `limit` transcript lines, oldest first."""
    rows = db.hot.recent_lines.run(conn, user=user, limit=limit).fetchall()
    return [{"direction": direction, "text": text, "at": at} for direction, text, at in reversed(rows)]


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

    @property
    def conversations(self) -> SqlConversations:
        """Ticket conversations inside this transaction."""
        return SqlConversations(self.db)

    def transcript(self, limit: int) -> list[dict]:
        """The user's last `limit` transcript lines, oldest first."""
        return recent_lines(self.db, self.db._conn, self.user, limit)


def write_record(db: Db, conn, user: str, now: float, record: TurnRecord, *, state: bool, key: str) -> None:
    """A message's transcript, analytics, tax ID and (`state`) conversation state and (`key`) reply."""
    hot = db.hot
    with db.batch(conn):  # nothing here is read back: PostgreSQL gets it in one round trip
        if record.lines:
            hot.transcript.run_many(conn, [{"user": user, "direction": d, "text": t, "at": now}
                                           for d, t in record.lines])
        if record.hits:
            hot.hit.run_many(conn, [{"intent": intent, "at": now} for intent in record.hits])
            hot.bump.run_many(conn, [{"name": HIT_PREFIX + intent} for intent in record.hits])
        if record.unanswered:
            hot.unanswered.run_many(conn, [{"user": user, "text": t, "at": now} for t in record.unanswered])
        if record.clarified:
            hot.clarified.run_many(conn, [{"user": user, "text": t, "at": now} for t in record.clarified])
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


def remember_stamp(db: Db, conn, stamp: Stamp, key: str, now: float) -> None:
    """Record that `key` used `stamp` (on the open write transaction); Replay if another message did."""
    hot = db.hot
    if hot.stamp_new.first(conn, stamp=stamp.name, key=key, until=stamp.expires_at) is not None:
        return
    digest, until = hot.stamp_found.first(conn, stamp=stamp.name)
    if digest == key:
        return
    if until >= now:
        raise Replay(stamp.name)
    hot.stamp_take.run(conn, stamp=stamp.name, key=key, until=stamp.expires_at)  # expired: free again


class SqlTurn:
    """One message on SQL (see the module docstring)."""

    def __init__(self, db: Db, conn, key: str, user: str, now: float, stamp: Stamp | None):
        """Read the user's state, a stored reply and the stamp's first user, in one statement."""
        self.db, self.conn, self.key, self.user, self.now = db, conn, key, user, now
        self.stamp = stamp if key else None
        state, tax_id, held, reply, first = db.hot.load.first(
            conn, key=key, user=user, stamp=self.stamp.name if self.stamp else "", now=now)
        if first is not None and first != key:
            raise Replay(self.stamp.name)
        self.status, self.reply = ("done", reply) if reply is not None else ("new", None)
        self.session = decode_session(state, tax_id) if reply is None else Session()
        self.held = bool(held)
        if reply is not None and self.stamp and first is None:  # a retry under a stamp of its own
            with db.tx(write=True, conn=conn):
                remember_stamp(db, conn, self.stamp, key, now)

    def commit(self, work: Callable[[TurnWriter], TurnRecord]) -> str:
        """Claim, check the stamp, run `work`, write its record: one transaction (module docstring)."""
        with self.db.tx(write=True, conn=self.conn) as conn:
            if self.key and self.db.hot.claim.first(conn, key=self.key, now=self.now) is None:
                status, reply = self.db.hot.claimed.first(conn, key=self.key)
                if status == "done":
                    log.info("dedupe: %s was answered by a concurrent attempt", self.key)
                    return reply
            if self.stamp:
                remember_stamp(self.db, conn, self.stamp, self.key, self.now)
            record = work(SqlWriter(self.db.on(conn), self.user))
            write_record(self.db, conn, self.user, self.now, record, state=True, key=self.key)
        return record.reply


class SqlTurns:
    """Turns, dedupe, replay stamps and transcript on SQL."""

    def __init__(self, db: Db):
        """Turns on `db`."""
        self.db = db

    @contextmanager
    def turn(self, key: str, user: str, now: float, lease: float = CLAIM_LEASE_SECONDS,
             stamp: Stamp | None = None):
        """One connection for the message: SQLite reads outside a transaction (one statement is
        consistent by itself) and writes in one; PostgreSQL reads and writes in one transaction."""
        with self.db.connection() as conn:
            if not self.db.reads_in_write:
                yield SqlTurn(self.db, conn, key, user, now, stamp)
                return
            with self.db.tx(write=True, conn=conn):
                yield SqlTurn(self.db.on(conn), conn, key, user, now, stamp)

    def recent_messages(self, user: str, limit: int = 10) -> list[dict]:
        """Last `limit` transcript lines, oldest first: {"direction", "text", "at"}."""
        with self.db.tx() as conn:
            return recent_lines(self.db, conn, user, limit)

    def purge(self, messages_before: float, now: float) -> int:
        """Delete dedupe rows older than `messages_before` and stamps expired at `now`."""
        with self.db.tx(write=True) as conn:
            when = func.coalesce(messages.c.done_at, messages.c.claimed_at)
            removed = conn.execute(delete(messages).where(when < messages_before)).rowcount
            return removed + conn.execute(delete(stamps).where(stamps.c.expires_at < now)).rowcount
