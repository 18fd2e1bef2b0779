"""The per-message hot path of the SQL store as statements compiled once per dialect.

Building and compiling a SQLAlchemy Core statement costs more than running it on SQLite; these
statements are compiled when the store opens and run on the transaction's DB-API cursor, so a
message costs one read and one write transaction of plain SQL. Only JSON needs care: no
bind/result processors run here, so session state goes through bot/store/codec.py both ways.
"""
from __future__ import annotations

import fcntl
import os
import threading

from sqlalchemy import Integer, and_, bindparam, delete, exists, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.store.console_schema import clarified
from bot.store.schema import (hits, messages, outbox_table, sessions, stamps, ticket_events, tickets, transcript,
                              unanswered, users)


class WriterQueue:
    """SQLite writers wait in line on a lock file instead of in SQLite's sleeping busy handler.

    SQLite retries a locked database by sleeping (up to 100 ms at a time), so under load a
    writer can sleep long after the lock is free. flock() wakes the next writer at once; a
    thread lock orders the threads of one process (flock is per open file, not per thread).
    """

    def __init__(self, path: str):
        """The lock file next to the database; opened lazily per process."""
        self.path = path
        self._threads = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def __enter__(self):
        """Wait for the writers before us (threads, then processes)."""
        self._threads.acquire()
        try:
            if self._pid != os.getpid():  # a forked child must not share its parent's open file
                self._fd, self._pid = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600), os.getpid()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise
        return self

    def __exit__(self, *exc):
        """Let the next writer in."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


class Prepared:
    """One statement compiled for a dialect, run with a dict of values."""

    def __init__(self, statement, dialect):
        """Compile `statement` for `dialect` and remember the parameter order."""
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self.order = compiled.positiontup if compiled.positional else None
        self.literals = compiled.construct_params({}, _check=False)  # values baked into the statement

    def params(self, values: dict):
        """DB-API parameters: literals baked into the statement plus `values`."""
        merged = {**self.literals, **values}
        return tuple(merged[name] for name in self.order) if self.order is not None else merged

    def run(self, conn, **values):
        """Execute once on the transaction's DB-API connection; returns the cursor."""
        cursor = conn.connection.dbapi_connection.cursor()
        cursor.execute(self.sql, self.params(values))
        return cursor

    def first(self, conn, **values) -> tuple | None:
        """Execute once and return the first row."""
        return self.run(conn, **values).fetchone()

    def run_many(self, conn, rows: list[dict]) -> None:
        """Execute once per row (executemany)."""
        cursor = conn.connection.dbapi_connection.cursor()
        cursor.executemany(self.sql, [self.params(row) for row in rows])


def _upsert(make_insert, table, key: str, columns: tuple[str, ...]):
    """INSERT … ON CONFLICT (key) DO UPDATE of `columns`, all bound by name."""
    stmt = make_insert(table).values({key: bindparam(key), **{c: bindparam(c) for c in columns}})
    return stmt.on_conflict_do_update(index_elements=[key], set_={c: stmt.excluded[c] for c in columns})


def _bump(make_insert):
    """counters[name] += 1 (inserted at 1): answered questions per intent for /metrics."""
    from bot.store.gauges import counters

    stmt = make_insert(counters).values(name=bindparam("name"), value=1)
    return stmt.on_conflict_do_update(index_elements=["name"], set_={"value": counters.c.value + 1})


def held_where(user) -> tuple:
    """WHERE clauses of a user's held customer messages (`user` a value or a bindparam)."""
    return (outbox_table.c.user == user, outbox_table.c.target == "customer",
            outbox_table.c.status == "held")


def _ticket_statements(make_insert) -> dict:
    """A message's ticket writes: find its own or the need's open ticket, insert ticket, outbox rows, events."""
    source, user = bindparam("source_key"), bindparam("user")
    cols = tickets.c
    same_need = and_(cols.user == user, cols.intent == bindparam("intent"), cols.tax_id == bindparam("tax_id"),
                     cols.status != "resolved")
    own = cols.source_key == source
    ticket_values = {c: bindparam(c) for c in ("user", "kind", "intent", "status", "tax_id", "flags", "words",
                                                "channel", "source_key", "created_at")}
    outbox_values = {c: bindparam(c) for c in ("target", "user", "payload", "ticket_id", "status", "next_at",
                                                "created_at")}
    return {
        "ticket_for_need": select(cols.id, own).where(or_(own, same_need))
        .order_by(own.desc(), cols.created_at.desc(), cols.id.desc()).limit(1),
        "ticket_new": make_insert(tickets).values(ticket_values)
        .on_conflict_do_nothing(index_elements=["source_key"]).returning(cols.id),
        "outbox_new": insert(outbox_table).values({**outbox_values, "attempts": 0}).returning(outbox_table.c.id),
        "event_new": insert(ticket_events).values(ticket_id=bindparam("ticket_id"), at=bindparam("at"),
                                                  kind=bindparam("kind"), detail=bindparam("detail"),
                                                  actor=bindparam("actor")),
        "lock2": select(func.pg_advisory_xact_lock(bindparam("kind", type_=Integer),
                                                   bindparam("key", type_=Integer))),
    }


class HotPath:
    """Compiled statements of one message's read and write (see bot/store/sql_turns.py)."""

    def __init__(self, dialect):
        """Compile every hot-path statement for this dialect."""
        make_insert = pg_insert if dialect.name == "postgresql" else sqlite_insert
        key, user, now, stamp = bindparam("key"), bindparam("user"), bindparam("now"), bindparam("stamp")
        tax_id = select(users.c.tax_id).where(users.c.user == user).scalar_subquery()
        statements = {
            "load": select(select(sessions.c.state).where(sessions.c.user == user).scalar_subquery(),
                           tax_id, exists().where(*held_where(user)),
                           select(messages.c.reply).where(messages.c.key == key,
                                                          messages.c.status == "done").scalar_subquery(),
                           select(stamps.c.digest).where(stamps.c.stamp == stamp,
                                                         stamps.c.expires_at >= now).scalar_subquery()),
            "stamp_new": make_insert(stamps).values(stamp=stamp, digest=key, expires_at=bindparam("until"))
            .on_conflict_do_nothing(index_elements=["stamp"]).returning(stamps.c.stamp),
            "stamp_found": select(stamps.c.digest, stamps.c.expires_at).where(stamps.c.stamp == stamp),
            "stamp_take": update(stamps).where(stamps.c.stamp == stamp)
            .values(digest=key, expires_at=bindparam("until")),
            "load_user": select(tax_id, exists().where(*held_where(user))),
            "claim": make_insert(messages).values(key=key, status="claimed", claimed_at=now)
            .on_conflict_do_nothing(index_elements=["key"]).returning(messages.c.key),
            "claimed": select(messages.c.status, messages.c.reply).where(messages.c.key == key),
            "finish": _upsert(make_insert, messages, "key", ("status", "reply", "done_at")),
            "transcript": insert(transcript).values(user=user, direction=bindparam("direction"),
                                                    text=bindparam("text"), at=bindparam("at")),
            "hit": insert(hits).values(intent=bindparam("intent"), at=bindparam("at")),
            "unanswered": insert(unanswered).values(user=user, text=bindparam("text"), at=bindparam("at")),
            "clarified": insert(clarified).values(user=user, text=bindparam("text"), at=bindparam("at")),
            "save_session": _upsert(make_insert, sessions, "user", ("state", "updated_at")),
            "end_session": delete(sessions).where(sessions.c.user == user),
            "remember": _upsert(make_insert, users, "user", ("tax_id", "updated_at")),
            "forget": delete(users).where(users.c.user == user),
            "bump": _bump(make_insert),
            "recent_lines": select(transcript.c.direction, transcript.c.text, transcript.c.at)
            .where(transcript.c.user == user).order_by(transcript.c.id.desc()).limit(bindparam("limit")),
            **_ticket_statements(make_insert),
        }
        self.sql = {name: Prepared(stmt, dialect) for name, stmt in statements.items()}

    def __getattr__(self, name: str) -> Prepared:
        """The prepared statement `name`."""
        try:
            return self.__dict__["sql"][name]
        except KeyError:
            raise AttributeError(name) from None
