"""The store on one SQL database (SQLite default, PostgreSQL): transactions, tokens, the report."""
from __future__ import annotations

import copy
import logging
import threading
from contextlib import contextmanager, nullcontext

from sqlalchemy import Table, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.store.base import Store
from bot.store.prepared import HotPath, WriterQueue
from bot.store.wal import Checkpointer
from bot.store.schema import SCHEMA_LOCK, hits, make_engine, metadata, outbox_table, tickets, tokens, unanswered
from bot.store.console_schema import add_missing_columns
from bot.store.sql_console import sql_console
from bot.store.sql_conversation import SqlConversations
from bot.store.sql_desk import SqlOutbox, SqlTickets
from bot.store.sql_turns import SqlTurns
from bot.store.gauges import SqlGauges

log = logging.getLogger(__name__)


class Db:
    """One SQL database: its engine, compiled hot path and transactions (one per multi-row change)."""

    def __init__(self, url: str):
        """Connect and create the schema (safe when several workers start at once)."""
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        self.insert = pg_insert if self.dialect == "postgresql" else sqlite_insert
        self.hot = HotPath(self.engine.dialect)
        in_memory = self.dialect == "sqlite" and self.engine.url.database in (None, "", ":memory:")
        self._lock = threading.RLock() if in_memory else nullcontext()
        on_disk = self.dialect == "sqlite" and not in_memory
        self._write_lock = WriterQueue(self.engine.url.database + ".lock") if on_disk else nullcontext()
        self._checkpoints = Checkpointer(self.engine.url.database) if on_disk else None
        self._conn = None  # set on a Db bound to an open transaction (see `on`)
        self._schema_ready = False
        try:
            self._create_schema()
        except OperationalError as exc:  # a worker (re)starting during an outage must still boot
            log.warning("store: %s unreachable at start (%s); the schema is checked on first use",
                        self.engine.url.render_as_string(hide_password=True), type(exc).__name__)

    def _create_schema(self) -> None:
        """Create missing tables and columns (safe when several workers start at once)."""
        with self._lock, self.engine.connect() as conn:
            with self._write_lock, conn.execution_options(immediate=True).begin():
                self.advisory_lock(conn, SCHEMA_LOCK)
                metadata.create_all(conn)
                add_missing_columns(conn)
        self._schema_ready = True
        log.info("store: %s ready", self.engine.url.render_as_string(hide_password=True))

    @property
    def reads_in_write(self) -> bool:
        """Whether a message's reads may share its write transaction (PostgreSQL: row locks only;
        SQLite would hold the one writer lock through the whole message)."""
        return self.dialect == "postgresql"

    @contextmanager
    def connection(self):
        """One pooled connection (in-memory SQLite: the only one, held under the lock); the schema
        is made first if the database was unreachable when this Db opened."""
        if not self._schema_ready:
            self._create_schema()
        with self._lock, self.engine.connect() as conn:
            yield conn

    @contextmanager
    def tx(self, write: bool = False, conn=None):
        """One transaction (the open one on a bound Db), on `conn` or a pooled connection;
        a SQLite writer queues for the lock first and takes it at BEGIN (IMMEDIATE)."""
        if self._conn is not None:
            yield self._conn
            return
        with nullcontext(conn) if conn is not None else self.connection() as conn:
            with self._write_lock if write else nullcontext(), conn.execution_options(immediate=write).begin():
                yield conn
        if write and self._checkpoints is not None:
            self._checkpoints.wrote()

    def batch(self, conn):
        """A block of statements whose results nobody reads, sent together: PostgreSQL's pipeline
        mode (one round trip instead of one per statement; errors surface at the block's end)."""
        if self.dialect == "postgresql":
            return conn.connection.dbapi_connection.pipeline()
        return nullcontext()

    def on(self, conn) -> Db:
        """This database seen from inside the open transaction `conn`."""
        bound = copy.copy(self)
        bound._conn = conn
        return bound

    def advisory_lock(self, conn, key: int) -> None:
        """PostgreSQL: hold a transaction-scoped advisory lock (SQLite's BEGIN IMMEDIATE suffices)."""
        if self.dialect == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(key)))

    def upsert(self, conn, table: Table, key: dict, values: dict) -> None:
        """Insert or update the row identified by `key`."""
        stmt = self.insert(table).values(**key, **values)
        conn.execute(stmt.on_conflict_do_update(index_elements=list(key), set_=values))

    def close(self) -> None:
        """Stop the WAL checkpoints, release all pooled connections."""
        if self._checkpoints is not None:
            self._checkpoints.close()
        self.engine.dispose()


class SqlTokens:
    """Tokens in the tokens table."""

    def __init__(self, db: Db):
        """Tokens of `db`."""
        self.db = db

    def get(self, name: str, now: float) -> str | None:
        """A cached token that is still valid at `now`, else None."""
        with self.db.tx() as conn:
            value = conn.execute(select(tokens.c.value).where(tokens.c.name == name,
                                                              tokens.c.expires_at > now)).scalar()
        return value or None

    def put(self, name: str, value: str, expires_at: float) -> None:
        """Cache a token until expires_at."""
        with self.db.tx(write=True) as conn:
            self.db.upsert(conn, tokens, {"name": name}, {"value": value, "expires_at": expires_at})


class SqlReports(SqlGauges):
    """The authors' report from the analytics, ticket and outbox tables; cheap counts for /metrics."""

    def __init__(self, db: Db):
        """Report on `db`."""
        self.db = db

    def report(self) -> dict:
        """Unanswered questions (most asked first), hits per intent, tickets and outbox rows by status."""
        count, last = func.count().label("count"), func.max(unanswered.c.at).label("last_at")
        with self.db.tx() as conn:
            asked = conn.execute(select(unanswered.c.text, count, last).group_by(unanswered.c.text)
                                 .order_by(count.desc(), last.desc(), unanswered.c.text)).mappings().all()
            hit = conn.execute(select(hits.c.intent, func.count()).group_by(hits.c.intent)).all()
            states = conn.execute(select(tickets.c.status, func.count()).group_by(tickets.c.status)).all()
            queued = conn.execute(select(outbox_table.c.target, outbox_table.c.status, func.count())
                                  .group_by(outbox_table.c.target, outbox_table.c.status)).all()
        return {"unanswered": [dict(row) for row in asked], "hits": dict(hit), "tickets": dict(states),
                "outbox": {f"{target}:{status}": n for target, status, n in queued}}


def sql_store(db: Db) -> Store:
    """Every part on one SQL database."""
    return Store(turns=SqlTurns(db), tickets=SqlTickets(db), outbox=SqlOutbox(db), tokens=SqlTokens(db),
                 reports=SqlReports(db), close=db.close, console=sql_console(db),
                 conversations=SqlConversations(db))
