"""State storage: SQL (SQLite default, PostgreSQL) with optional Redis for hot, cross-host state."""
from __future__ import annotations

from bot.config import StorageConfig
from bot.store.base import Claim, OutboxRow, Store
from bot.store.redis_state import RedisState
from bot.store.sql import SqlStore

__all__ = ["Claim", "OutboxRow", "RedisState", "SqlStore", "Store", "open_store"]


def open_store(storage: StorageConfig) -> Store:
    """The configured store: SqlStore (a sqlite file's folder is created), fronted by Redis if set."""
    sql = SqlStore(storage.url)
    if storage.redis_url:
        return RedisState(storage.redis_url, sql)
    return sql
