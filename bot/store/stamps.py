"""The replay cache: which message first used a callback's timestamp+nonce (shared by all workers).

A signed WeChat query (timestamp, nonce, signature) authenticates only those three values, not a
plaintext body, so a query captured from a log could carry a forged message. Each timestamp+nonce
is therefore good for one message: the first one seen under it. An entry lives until its
timestamp leaves the accepted window (timestamp + tolerance); after that the timestamp check
refuses the request anyway.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import redis
from sqlalchemy import Column, Double, String, Table, bindparam, delete, select, update

from bot.store.prepared import Prepared
from bot.store.schema import metadata

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from bot.store.sql import Db

stamps = Table("stamps", metadata, Column("stamp", String, primary_key=True),
               Column("digest", String, nullable=False), Column("expires_at", Double, nullable=False))


class SqlStamps:
    """ReplayCache in the stamps table."""

    def __init__(self, db: Db):
        """Stamps of `db`, their statements compiled once (one runs for every message)."""
        self.db = db
        stamp, dialect = bindparam("stamp"), db.engine.dialect
        self.new = Prepared(db.insert(stamps).values(stamp=stamp, digest=bindparam("digest"),
                                                     expires_at=bindparam("expires_at"))
                            .on_conflict_do_nothing(index_elements=["stamp"]).returning(stamps.c.stamp), dialect)
        self.found = Prepared(select(stamps.c.digest, stamps.c.expires_at).where(stamps.c.stamp == stamp), dialect)
        self.take = Prepared(update(stamps).where(stamps.c.stamp == stamp)
                             .values(digest=bindparam("new_digest"), expires_at=bindparam("until")), dialect)

    def remember_stamp(self, stamp: str, digest: str, expires_at: float, now: float) -> str:
        """INSERT … ON CONFLICT DO NOTHING; an expired entry is taken over."""
        with self.db.tx(write=True) as conn:
            if self.new.first(conn, stamp=stamp, digest=digest, expires_at=expires_at) is not None:
                return digest
            first, until = self.found.first(conn, stamp=stamp)
            if until >= now:
                return first
            self.take.run(conn, stamp=stamp, new_digest=digest, until=expires_at)
            return digest

    def purge_stamps(self, now: float) -> int:
        """Delete expired entries."""
        with self.db.tx(write=True) as conn:
            return conn.execute(delete(stamps).where(stamps.c.expires_at < now)).rowcount


# KEYS[1] = stamp key; ARGV = digest, expires_at, now, ttl. The expiry is checked against the
# caller's clock (as SQL does); Redis's own TTL only cleans up.
REMEMBER_SCRIPT = """
local found = redis.call('HMGET', KEYS[1], 'digest', 'until')
if found[1] and tonumber(found[2]) >= tonumber(ARGV[3]) then return found[1] end
redis.call('HSET', KEYS[1], 'digest', ARGV[1], 'until', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return ARGV[1]
"""


class RedisStamps:
    """ReplayCache in Redis; Redis expires entries."""

    def __init__(self, client: redis.Redis, prefix: str):
        """Stamps under `prefix`."""
        self.prefix = prefix
        self._remember = client.register_script(REMEMBER_SCRIPT)

    def remember_stamp(self, stamp: str, digest: str, expires_at: float, now: float) -> str:
        """One atomic script: the live entry's digest, or ours when there was none."""
        ttl = max(1, int(expires_at - now) + 1)
        return self._remember(keys=[f"{self.prefix}stamp:{stamp}"], args=[digest, repr(expires_at), repr(now), ttl])

    def purge_stamps(self, now: float) -> int:
        """Nothing to do: Redis expires entries itself."""
        return 0


class FallbackStamps:
    """Redis stamps, or the SQL ones while Redis is unreachable (a replay check never needs Redis)."""

    def __init__(self, first: RedisStamps, second: SqlStamps):
        """Try `first`; on a Redis error use `second`."""
        self.first, self.second = first, second

    def remember_stamp(self, stamp: str, digest: str, expires_at: float, now: float) -> str:
        """The first digest under `stamp`, from Redis or else SQL."""
        try:
            return self.first.remember_stamp(stamp, digest, expires_at, now)
        except redis.RedisError as exc:
            log.warning("store: Redis unavailable for replay stamps (%s); using SQL", type(exc).__name__)
            return self.second.remember_stamp(stamp, digest, expires_at, now)

    def purge_stamps(self, now: float) -> int:
        """Purge the SQL entries (Redis expires its own)."""
        return self.second.purge_stamps(now)
