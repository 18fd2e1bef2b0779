"""Redis in front of SQL: dedupe, conversation state and tokens shared across hosts; the rest in SQL.

A message checks its delivery's timestamp+nonce, claims its key and reads its state in one Lua
call (a stamp is recorded with the claim), then writes everything in one SQL transaction —
including its state and reply, so Redis is a cache: a Redis restart (`shutdown nosave`) loses no
conversation, and a reply kept in SQL still answers a retry — and then its state and reply in one
Redis pipeline. A claim without a reply older than the lease (a killed worker) is taken over.
While Redis is unreachable (REDIS_TIMEOUT), turns and tokens run on SQL alone.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Callable

import redis

from bot.model import STATE_KEEP_SECONDS, Replay, Session, Stamp
from bot.store.base import CLAIM_LEASE_SECONDS, Store, TurnRecord, TurnWriter
from bot.store.codec import decode_session, encode_session
from bot.store.sql import Db, SqlTokens, sql_store
from bot.store.sql_turns import SqlTurns, SqlWriter, write_record

log = logging.getLogger(__name__)

MESSAGE_TTL_SECONDS = 24 * 3600
REDIS_TIMEOUT = 1.0  # seconds: a Redis that does not answer in 1 s is down; SQL takes over (WeChat waits 5 s)

# KEYS = message key, session key, stamp key; ARGV = now, lease, ttl, the stamp's expiry ("" = no
# stamp), the stamp's ttl. Atomic: a stamp another live message used is a replay; at most one
# caller gets "new". The stamp's expiry is checked against the caller's clock (as SQL does).
CLAIM_SCRIPT = """
if ARGV[4] ~= '' then
  local first = redis.call('HMGET', KEYS[3], 'digest', 'until')
  if first[1] and first[1] ~= KEYS[1] and tonumber(first[2]) >= tonumber(ARGV[1]) then
    return {'replay'}
  end
  if first[1] ~= KEYS[1] then
    redis.call('HSET', KEYS[3], 'digest', KEYS[1], 'until', ARGV[4])
    redis.call('EXPIRE', KEYS[3], ARGV[5])
  end
end
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'done' then
  return {'done', redis.call('HGET', KEYS[1], 'reply')}
end
if status and tonumber(ARGV[1]) - tonumber(redis.call('HGET', KEYS[1], 'at')) < tonumber(ARGV[2]) then
  return {'busy'}
end
redis.call('HSET', KEYS[1], 'status', 'claimed', 'at', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if status then return {'takeover', redis.call('GET', KEYS[2])} end
return {'new', redis.call('GET', KEYS[2])}
"""


class RedisTurn:
    """One message: claimed and read from Redis, its outcome written to SQL, then Redis."""

    def __init__(self, turns: RedisTurns, key: str, user: str, now: float, status: str,
                 reply: str | None = None, session: Session | None = None, held: bool = False):
        """The claim's outcome and (when ours) the user's state."""
        self.turns, self.key, self.user, self.now = turns, key, user, now
        self.status, self.reply, self.session, self.held = status, reply, session or Session(), held

    def commit(self, work: Callable[[TurnWriter], TurnRecord]) -> str:
        """Everything in one SQL transaction (state and reply too), then the Redis cache."""
        db = self.turns.db
        with db.tx(write=True) as conn:
            record = work(SqlWriter(db.on(conn), self.user))
            write_record(db, conn, self.user, self.now, record, state=True, key=self.key)
        try:
            self.turns.finish(self.key, self.user, self.now, record)
        except redis.RedisError as exc:  # SQL has it all; a retry finds the reply there
            log.warning("store: Redis unavailable after a turn (%s); kept in SQL", type(exc).__name__)
        return record.reply


def newer(cached: Session, kept: Session) -> Session:
    """The later of Redis's cached state and SQL's (SQL moved on while Redis was unreachable)."""
    return kept if kept.updated_at > cached.updated_at else cached


class RedisTurns:
    """Turns with dedupe and state in Redis, the durable rest in SQL."""

    def __init__(self, client: redis.Redis, db: Db, prefix: str, message_ttl: int = MESSAGE_TTL_SECONDS):
        """Redis `client` (keys namespaced by `prefix`) in front of `db`."""
        self.redis, self.db, self.prefix, self.message_ttl = client, db, prefix, message_ttl
        self._claim = client.register_script(CLAIM_SCRIPT)
        self.sql = SqlTurns(db)

    def key(self, kind: str, name: str) -> str:
        """A namespaced Redis key."""
        return f"{self.prefix}{kind}:{name}"

    @contextmanager
    def turn(self, key: str, user: str, now: float, lease: float = CLAIM_LEASE_SECONDS,
             stamp: Stamp | None = None):
        """Check the stamp, claim `key` and read the state in one call; tax ID, held flag (and, when
        SQL has a newer state or a reply, those) from SQL. Without Redis: the SQL turn."""
        try:
            status, rest = self._claim_in_redis(key, user, now, lease, stamp)
        except redis.RedisError as exc:
            log.warning("store: Redis unavailable (%s); message %s on SQL alone", type(exc).__name__, key)
            with self.sql.turn(key, user, now, lease, stamp) as turn:
                yield turn
            return
        if status == "replay":
            raise Replay(stamp.name)
        if status not in ("new", "takeover"):
            yield RedisTurn(self, key, user, now, status, reply=rest[0] if rest else None)
            return
        if status == "takeover":
            log.warning("store: took over stale claim on message %s", key)
        with self.db.tx() as conn:
            state, tax_id, held, reply, _ = self.db.hot.load.first(conn, key=key, user=user, stamp="", now=now)
        if reply is not None:  # answered while Redis was away (or after it lost its cache)
            yield RedisTurn(self, key, user, now, "done", reply=reply)
            return
        session = newer(decode_session(rest[0] if rest else None, tax_id), decode_session(state, tax_id))
        yield RedisTurn(self, key, user, now, "new", session=session, held=bool(held))

    def _claim_in_redis(self, key: str, user: str, now: float, lease: float,
                        stamp: Stamp | None) -> tuple[str, list]:
        """(status, [cached state or reply]) from one Lua call (a GET when there is no key)."""
        session_key = self.key("session", user)
        if not key:
            return "new", [self.redis.get(session_key)]
        until, ttl = (repr(stamp.expires_at), max(1, int(stamp.expires_at - now) + 1)) if stamp else ("", 0)
        status, *rest = self._claim(
            keys=[self.key("msg", key), session_key, self.key("stamp", stamp.name if stamp else "")],
            args=[repr(now), repr(lease), self.message_ttl, until, ttl])
        return status, rest

    def finish(self, key: str, user: str, now: float, record: TurnRecord) -> None:
        """The new state and the stored reply, in one pipeline."""
        with self.redis.pipeline(transaction=True) as pipe:
            if record.end_session:
                pipe.delete(self.key("session", user))
            elif record.session is not None:
                pipe.set(self.key("session", user), encode_session(record.session), ex=STATE_KEEP_SECONDS)
            if key:
                name = self.key("msg", key)
                pipe.hset(name, mapping={"status": "done", "reply": record.reply, "at": repr(now)})
                pipe.expire(name, self.message_ttl)
            pipe.execute()

    def recent_messages(self, user: str, limit: int = 10) -> list[dict]:
        """Last `limit` transcript lines (kept in SQL), oldest first."""
        return self.sql.recent_messages(user, limit)

    def purge(self, messages_before: float, now: float) -> int:
        """Dedupe and stamp keys expire in Redis by themselves; rows from SQL-only days are purged there."""
        return self.sql.purge(messages_before, now)


class RedisTokens:
    """Access tokens in Redis hashes."""

    def __init__(self, client: redis.Redis, prefix: str, sql: SqlTokens):
        """Tokens under `prefix`, also kept in `sql` for when Redis is away."""
        self.redis, self.prefix, self.sql = client, prefix, sql

    def get(self, name: str, now: float) -> str | None:
        """A cached token that is still valid at `now`, else None (Redis down: SQL's)."""
        try:
            value, expires_at = self.redis.hmget(f"{self.prefix}token:{name}", ["value", "expires_at"])
        except redis.RedisError:
            return self.sql.get(name, now)
        if value and expires_at and float(expires_at) > now:
            return value
        return None

    def put(self, name: str, value: str, expires_at: float) -> None:
        """Cache a token until expires_at in SQL and Redis (checked against the caller's clock on read)."""
        self.sql.put(name, value, expires_at)
        try:
            self.redis.hset(f"{self.prefix}token:{name}", mapping={"value": value, "expires_at": repr(expires_at)})
        except redis.RedisError as exc:
            log.warning("store: Redis unavailable for tokens (%s); kept in SQL", type(exc).__name__)


def redis_store(redis_url: str, db: Db, prefix: str = "leqi:") -> Store:
    """Turns and tokens in Redis (with timeouts), tickets, outbox and the report in `db`."""
    client = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=REDIS_TIMEOUT,
                                  socket_connect_timeout=REDIS_TIMEOUT)
    sql = sql_store(db)

    def close() -> None:
        """Close the Redis pool and the SQL store."""
        client.close()
        db.close()
    return Store(turns=RedisTurns(client, db, prefix), tickets=sql.tickets, outbox=sql.outbox,
                 tokens=RedisTokens(client, prefix, sql.tokens), reports=sql.reports, close=close,
                 console=sql.console, conversations=sql.conversations)
