"""RedisState: dedupe, sessions and tokens in Redis (shared across hosts); the rest in SQL."""
from __future__ import annotations

import functools
import json
import logging
from dataclasses import replace

import redis

from bot.model import STATE_KEEP_SECONDS, Session
from bot.store.base import Claim, Store, TurnRecord
from bot.store.schema import session_from_state, session_state
from bot.store.sql import SqlStore
from bot.store.sql_conversation import CONVERSATION_METHODS
from bot.store.stamps import RedisStamps

log = logging.getLogger(__name__)

MESSAGE_TTL_SECONDS = 24 * 3600

# KEYS[1] = message key; ARGV = now, lease, ttl. Atomic: at most one caller gets "new".
CLAIM_SCRIPT = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'done' then
  return {'done', redis.call('HGET', KEYS[1], 'reply')}
end
if status and tonumber(ARGV[1]) - tonumber(redis.call('HGET', KEYS[1], 'at')) < tonumber(ARGV[2]) then
  return {'busy'}
end
redis.call('HSET', KEYS[1], 'status', 'claimed', 'at', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if status then return {'new', 'takeover'} end
return {'new'}
"""

# Methods kept in SQL: durable business data (tickets, outbox, transcript, analytics, tax IDs).
DELEGATED = (
    "purge_messages", "remember_tax_id", "forget_tax_id", "log_message", "recent_messages",
    "create_ticket", "get_ticket", "list_tickets", "resolve_ticket", "attach_to_ticket",
    "ticket_events", "queue_message", "claim_outbox", "outbox_sent", "outbox_retry", "outbox_hold",
    "take_held", "requeue_stale_sending", "log_unanswered", "log_hit", "report", "get_tax_id",
    "outbox_dead", "has_held", *CONVERSATION_METHODS,
)


class RedisState(RedisStamps, Store):
    """A Store whose hot, cross-host state lives in Redis; everything else goes to `inner`."""

    def __init__(self, redis_url: str, inner: SqlStore, prefix: str = "leqi:",
                 message_ttl: int = MESSAGE_TTL_SECONDS):
        """Connect (with timeouts) to Redis; keys are namespaced by `prefix`."""
        self.inner = inner
        self.prefix = prefix
        self.message_ttl = message_ttl
        self.redis = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=3.0,
                                          socket_connect_timeout=3.0)
        self._claim = self.redis.register_script(CLAIM_SCRIPT)

    def close(self) -> None:
        """Close the Redis pool and the SQL store."""
        self.redis.close()
        self.inner.close()

    def _key(self, kind: str, name: str) -> str:
        """A namespaced Redis key."""
        return f"{self.prefix}{kind}:{name}"

    def claim_message(self, key: str, now: float, lease: float = 4.0) -> Claim:
        """Claim `key`; a claim older than `lease` without a reply may be taken over."""
        result = self._claim(keys=[self._key("msg", key)], args=[repr(now), repr(lease), self.message_ttl])
        if result[0] == "new" and len(result) > 1:
            log.warning("store: took over stale claim on message %s", key)
        return Claim(result[0], result[1] if result[0] == "done" else None)

    def finish_message(self, key: str, reply: str, now: float) -> None:
        """Store the reply for `key` so retries get the same answer."""
        name = self._key("msg", key)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(name, mapping={"status": "done", "reply": reply, "at": repr(now)})
            pipe.expire(name, self.message_ttl)
            pipe.execute()

    def load_session(self, user: str) -> Session:
        """Conversation state from Redis merged with the tax ID from the SQL users table."""
        raw = self.redis.get(self._key("session", user))
        try:
            state = json.loads(raw) if raw else None
        except ValueError:
            log.warning("store: unreadable session JSON for %s dropped", user)
            state = None
        return session_from_state(state, self.inner.get_tax_id(user))

    def save_session(self, user: str, session: Session) -> None:
        """Persist the conversation state (not the tax ID); the dialogue ends stale stages itself."""
        data = json.dumps(session_state(session), ensure_ascii=False)
        self.redis.set(self._key("session", user), data, ex=STATE_KEEP_SECONDS)

    def end_session(self, user: str) -> None:
        """Delete the conversation state."""
        self.redis.delete(self._key("session", user))

    def load_turn(self, user: str) -> tuple[Session, bool]:
        """Session from Redis; tax ID and held messages from SQL."""
        return self.load_session(user), self.inner.has_held(user)

    def finish_turn(self, turn: TurnRecord) -> None:
        """Transcript and analytics in one SQL transaction; state and reply in one Redis pipeline."""
        self.inner.finish_turn(replace(turn, key="", session=None, end_session=False))
        with self.redis.pipeline(transaction=True) as pipe:
            if turn.end_session:
                pipe.delete(self._key("session", turn.user))
            elif turn.session is not None:
                data = json.dumps(session_state(turn.session), ensure_ascii=False)
                pipe.set(self._key("session", turn.user), data, ex=STATE_KEEP_SECONDS)
            if turn.key:
                name = self._key("msg", turn.key)
                pipe.hset(name, mapping={"status": "done", "reply": turn.reply, "at": repr(turn.now)})
                pipe.expire(name, self.message_ttl)
            pipe.execute()

    def get_token(self, name: str, now: float) -> str | None:
        """A cached token that is still valid at `now`, else None."""
        value, expires_at = self.redis.hmget(self._key("token", name), ["value", "expires_at"])
        if value and expires_at and float(expires_at) > now:
            return value
        return None

    def put_token(self, name: str, value: str, expires_at: float) -> None:
        """Cache a token until expires_at (checked against the caller's clock on read)."""
        self.redis.hset(self._key("token", name), mapping={"value": value, "expires_at": repr(expires_at)})


def _delegate(name: str):
    """A RedisState method that forwards `name` to the SQL store."""
    @functools.wraps(getattr(SqlStore, name))
    def method(self, *args, **kwargs):
        """Forwarded to self.inner."""
        return getattr(self.inner, name)(*args, **kwargs)
    return method


for _name in DELEGATED:
    setattr(RedisState, _name, _delegate(_name))
