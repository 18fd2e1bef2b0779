"""Tables and engine set-up for the SQL store (SQLite and PostgreSQL)."""
from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path

from sqlalchemy import (
    JSON, Column, Double, ForeignKey, Index, Integer, MetaData, String, Table, Text,
    create_engine, event, pool,
)
from sqlalchemy.engine import make_url

from bot.store.base import OutboxRow
from bot.store.wal import BACKSTOP_PAGES

log = logging.getLogger(__name__)

SCHEMA_LOCK = 0x6C65716973746F72  # pg advisory lock key for create_all ("leqistor")
OPS_LOCK = SCHEMA_LOCK + 1  # serialises the robot's per-minute budget
metadata = MetaData()
to_json = functools.partial(json.dumps, ensure_ascii=False)  # what JSON columns hold (also prepared statements)


def _t(name: str) -> Column:
    """An epoch-seconds column."""
    return Column(name, Double)


sessions = Table("sessions", metadata, Column("user", String, primary_key=True),
                 Column("state", JSON, nullable=False), _t("updated_at"))
messages = Table("messages", metadata, Column("key", String, primary_key=True),
                 Column("status", String, nullable=False), Column("reply", Text),
                 _t("claimed_at"), _t("done_at"))
users = Table("users", metadata, Column("user", String, primary_key=True),
              Column("tax_id", String, nullable=False), _t("updated_at"))
transcript = Table("transcript", metadata, Column("id", Integer, primary_key=True),
                   Column("user", String, nullable=False, index=True), Column("direction", String),
                   Column("text", Text), _t("at"))
tickets = Table(
    "tickets", metadata, Column("id", Integer, primary_key=True),
    Column("user", String, nullable=False, index=True), Column("kind", String), Column("intent", String),
    Column("status", String, nullable=False, index=True), Column("tax_id", String),
    Column("flags", JSON), Column("words", Text), Column("channel", String),
    Column("source_key", String, nullable=False, unique=True), _t("created_at"), _t("resolved_at"))
ticket_events = Table("ticket_events", metadata, Column("id", Integer, primary_key=True),
                      Column("ticket_id", ForeignKey("tickets.id"), nullable=False, index=True),
                      _t("at"), Column("kind", String), Column("detail", Text),
                      Column("actor", String))  # who: an operator, "cli:…", "wecom:…"; NULL = bot/customer
attachments = Table("attachments", metadata, Column("id", Integer, primary_key=True),
                    Column("ticket_id", ForeignKey("tickets.id"), nullable=False, index=True),
                    Column("media", Text, nullable=False), _t("at"))
outbox_table = Table(
    "outbox", metadata, Column("id", Integer, primary_key=True), Column("target", String, nullable=False),
    Column("user", String), Column("payload", JSON, nullable=False),
    Column("ticket_id", ForeignKey("tickets.id")), Column("status", String, nullable=False),
    Column("attempts", Integer, nullable=False, default=0), _t("next_at"), Column("last_error", Text),
    _t("created_at"), _t("claimed_at"), _t("sent_at"),
    Index("ix_outbox_due", "status", "target", "next_at"), Index("ix_outbox_user", "user", "status"))
unanswered = Table("unanswered", metadata, Column("id", Integer, primary_key=True),
                   Column("user", String), Column("text", Text, nullable=False), _t("at"))
hits = Table("hits", metadata, Column("id", Integer, primary_key=True),
             Column("intent", String, nullable=False), _t("at"))
# The replay cache: which message first used a callback's timestamp+nonce (bot.model.Stamp),
# until the timestamp leaves the accepted window; then the timestamp check refuses it anyway.
stamps = Table("stamps", metadata, Column("stamp", String, primary_key=True),
               Column("digest", String, nullable=False), Column("expires_at", Double, nullable=False))
tokens = Table("tokens", metadata, Column("name", String, primary_key=True),
               Column("value", Text, nullable=False), _t("expires_at"))


def outbox_row(row) -> OutboxRow:
    """An outbox table row as the contract's OutboxRow."""
    return OutboxRow(id=row.id, target=row.target, user=row.user or "", payload=row.payload,
                     ticket_id=row.ticket_id, attempts=row.attempts, next_at=row.next_at,
                     status=row.status, last_error=row.last_error or "")


def _sqlite_setup(engine, on_disk: bool) -> None:
    """Per-connection pragmas; SQLAlchemy emits BEGIN (IMMEDIATE for writers) itself."""
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        """Busy timeout, WAL and foreign keys on every new connection."""
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=5000")
        if on_disk:  # WAL + synchronous=NORMAL: durable across process crashes, one fsync per checkpoint
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")  # bot/store/wal.py checkpoints
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        """BEGIN IMMEDIATE takes the write lock up front, so writers queue instead of failing."""
        immediate = conn.get_execution_options().get("immediate")
        conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")


PG_CONNECT_TIMEOUT = 2  # seconds: an unreachable PostgreSQL fails fast enough to spool within WeChat's 5 s


def make_private(database: Path) -> None:
    """Create the SQLite file 0600 (its WAL and shm files copy its mode); tighten an existing one."""
    os.close(os.open(database, os.O_RDWR | os.O_CREAT, 0o600))
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        try:
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)
                log.warning("store: %s was readable by others; now 0600", path)
        except FileNotFoundError:
            pass


def make_engine(url: str):
    """An engine for `url`: psycopg 3 for PostgreSQL, WAL/StaticPool setup for SQLite."""
    parsed = make_url(url)
    serializer = to_json
    if parsed.get_backend_name() in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True, json_serializer=serializer,
                             connect_args={"connect_timeout": PG_CONNECT_TIMEOUT})
    if parsed.get_backend_name() != "sqlite":
        raise ValueError(f"unsupported storage url (sqlite:/// or postgresql://): {parsed.drivername}")
    on_disk = parsed.database not in (None, "", ":memory:")
    if on_disk:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        make_private(Path(parsed.database))
        engine = create_engine(parsed, json_serializer=serializer)
    else:
        engine = create_engine("sqlite://", poolclass=pool.StaticPool, json_serializer=serializer,
                               connect_args={"check_same_thread": False})
    _sqlite_setup(engine, on_disk)
    return engine
