"""Tables of the ops console (operators, server-side sessions, login failures, clarify log) and the
additive schema step that gives older databases the columns added since they were created."""
from __future__ import annotations

import logging

from sqlalchemy import Column, Double, Index, Integer, String, Table, Text, inspect, text

from bot.store.schema import metadata, ticket_events

log = logging.getLogger(__name__)

operators = Table("operators", metadata, Column("name", String, primary_key=True),
                  Column("password_hash", String, nullable=False), Column("created_at", Double))
console_sessions = Table(
    "console_sessions", metadata, Column("token_hash", String, primary_key=True),
    Column("operator", String, nullable=False, index=True), Column("csrf", String, nullable=False),
    Column("created_at", Double, nullable=False), Column("last_seen", Double, nullable=False))
login_failures = Table("login_failures", metadata, Column("id", Integer, primary_key=True),
                       Column("scope", String, nullable=False), Column("at", Double, nullable=False),
                       Index("ix_login_failures_scope", "scope", "at"))
clarified = Table("clarified", metadata, Column("id", Integer, primary_key=True),
                  Column("user", String), Column("text", Text, nullable=False), Column("at", Double))

# Columns added to tables after their first release: (table, column name).
ADDED_COLUMNS = ((ticket_events, "actor"),)


def add_missing_columns(conn) -> None:
    """ALTER TABLE … ADD COLUMN for every added column an existing database lacks (nullable)."""
    inspector = inspect(conn)
    for table, name in ADDED_COLUMNS:
        present = {col["name"] for col in inspector.get_columns(table.name)}
        if name in present:
            continue
        column = table.c[name]
        kind = column.type.compile(dialect=conn.dialect)
        conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{name}" {kind}'))
        log.info("store: added column %s.%s", table.name, name)
