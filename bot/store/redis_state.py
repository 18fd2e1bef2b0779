"""Redis in front of SQL: dedupe, conversation state and tokens shared across hosts; the rest in SQL.

A message checks its delivery's timestamp+nonce, claims its key and reads its state in one Lua
call (a stamp is recorded with the claim), then writes its durable part
(transcript, analytics, tax ID, tickets, outbox) in one SQL transaction and its state and reply in
one Redis pipeline. A claim without a reply older than the lease (a killed worker) is taken over.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Callable

import redis

from bot.model import STATE_KEEP_SECONDS, Replay, Session, Stamp
from bot.store.base import CLAIM_LEASE_SECONDS, Store, TurnRecord, TurnWriter
from bot.store.codec import decode_session, encode_session
from bot.store.sql import Db, sql_store
from bot.store.sql_turns import SqlTurns, SqlWriter, write_record

log = logging.getLogger(__name__)

MESSAGE_TTL_SECONDS = 24 * 3600

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
        """Durable writes in one SQL transaction, then state and reply in one Redis pipeline."""
        db = self.turns.db
        with db.tx(write=True) as conn:
            record = work(SqlWriter(db.on(conn), self.user))
            write_record(db, conn, self.user, self.now, record, state=False, key="")
        self.turns.finish(self.key, self.user, self.now, record)
        return record.reply


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
        """Check the stamp, claim `key` and read the state in one call; tax ID and held flag from SQL."""
        session_key = self.key("session", user)
        if key:
            until, ttl = (repr(stamp.expires_at), max(1, int(stamp.expires_at - now) + 1)) if stamp else ("", 0)
            status, *rest = self._claim(
                keys=[self.key("msg", key), session_key, self.key("stamp", stamp.name if stamp else "")],
                args=[repr(now), repr(lease), self.message_ttl, until, ttl])
        else:
            status, rest = "new", [self.redis.get(session_key)]
        if status == "replay":
            raise Replay(stamp.name)
        if status not in ("new", "takeover"):
            yield RedisTurn(self, key, user, now, status, reply=rest[0] if rest else None)
            return
        if status == "takeover":
            log.warning("store: took over stale claim on message %s", key)
        with self.db.tx() as conn:
            tax_id, held = self.db.hot.load_user.first(conn, user=user)
        yield RedisTurn(self, key, user, now, "new", session=decode_session(rest[0], tax_id), held=bool(held))

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

    def __init__(self, client: redis.Redis, prefix: str):
        """Tokens under `prefix`."""
        self.redis, self.prefix = client, prefix

    def get(self, name: str, now: float) -> str | None:
        """A cached token that is still valid at `now`, else None."""
        value, expires_at = self.redis.hmget(f"{self.prefix}token:{name}", ["value", "expires_at"])
        if value and expires_at and float(expires_at) > now:
            return value
        return None

    def put(self, name: str, value: str, expires_at: float) -> None:
        """Cache a token until expires_at (checked against the caller's clock on read)."""
        self.redis.hset(f"{self.prefix}token:{name}", mapping={"value": value, "expires_at": repr(expires_at)})


def redis_store(redis_url: str, db: Db, prefix: str = "leqi:") -> Store:
    """Turns and tokens in Redis (with timeouts), tickets, outbox and the report in `db`."""
    client = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=3.0,
                                  socket_connect_timeout=3.0)
    sql = sql_store(db)

    def close() -> None:
        """Close the Redis pool and the SQL store."""
        client.close()
        db.close()
    return Store(turns=RedisTurns(client, db, prefix), tickets=sql.tickets, outbox=sql.outbox,
                 tokens=RedisTokens(client, prefix), reports=sql.reports, close=close, console=sql.console,
                 conversations=sql.conversations)
