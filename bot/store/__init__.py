"""State storage: small parts (turns, tickets, outbox, tokens, report) on SQL, Redis optional in front."""
from __future__ import annotations

from bot.config import StorageConfig
from bot.store.base import OutboxRow, Store, TurnRecord
from bot.store.redis_state import redis_store
from bot.store.sql import Db, sql_store

__all__ = ["OutboxRow", "Store", "TurnRecord", "open_store"]


def open_store(storage: StorageConfig, redis_prefix: str = "leqi:") -> Store:
    """The configured store: SQL (a sqlite file's folder is created), Redis in front if set."""
    db = Db(storage.url)
    if storage.redis_url:
        return redis_store(storage.redis_url, db, redis_prefix)
    return sql_store(db)
