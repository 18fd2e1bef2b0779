"""Redis in front of SQL: hot state shared across hosts through Redis, durable data in each host's SQL."""
from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
import redis

from bot.model import STATE_KEEP_SECONDS, Session, Stage
from bot.store.redis_state import redis_store
from bot.store.sql import Db
from tests.store_cases import make_ticket, state_of, take_turn

T0 = 1_700_000_000.0
TAX_ID = "91110000600037341L"


@pytest.fixture
def hosts(redis_url):
    """Two "hosts": separate in-memory SQL stores sharing one Redis prefix; keys cleaned after."""
    prefix = f"test-redis:{uuid.uuid4().hex}:"
    pair = [redis_store(redis_url, Db("sqlite://"), prefix) for _ in range(2)]
    yield pair
    client = pair[0].turns.redis
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    for host in pair:
        host.close()


def abandon(host, key: str, now: float) -> None:
    """An attempt that claimed `key` and died before committing."""
    with host.turns.turn(key, "u1", now, lease=4.0):
        pass


@pytest.mark.parametrize("first, second, expected", [
    ((0, T0), (1, T0 + 1), "busy"),  # WeChat retry lands on the other host
    ((0, T0), (1, T0 + 5), "new"),  # the first host died mid-message
    ((0, T0), (0, T0 + 1), "busy"),
])
def test_claims_are_shared_across_hosts(hosts, first, second, expected):
    """A message claimed on one host is busy (or taken over once stale) on another."""
    abandon(hosts[first[0]], "m1", first[1])
    with hosts[second[0]].turns.turn("m1", "u1", second[1], lease=4.0) as turn:
        assert turn.status == expected


def test_reply_is_shared_and_dedupe_keys_expire(hosts):
    """Another host answers a retry with the stored reply; dedupe keys do not live forever."""
    take_turn(hosts[0], "m1", reply="您好")
    assert take_turn(hosts[1], "m1", now=T0 + 2) == ("done", "您好")
    turns = hosts[0].turns
    assert 0 < turns.redis.ttl(turns.key("msg", "m1")) <= turns.message_ttl


def test_session_shared_tax_id_from_sql(hosts):
    """The dialogue state follows the user across hosts (kept a day: the dialogue ends stale stages); the tax ID is SQL's."""
    session = Session(stage=Stage.AWAITING_TAX_ID, purpose="leqi-channel-missing", updated_at=T0)
    take_turn(hosts[0], "m1", session=session)
    take_turn(hosts[1], "m2", tax_id=TAX_ID, session=session)
    assert state_of(hosts[1])[0] == replace(session, tax_id=TAX_ID)
    assert state_of(hosts[0])[0] == session  # host 0's SQL has no tax ID for u1
    turns = hosts[0].turns
    assert 0 < turns.redis.ttl(turns.key("session", "u1")) <= STATE_KEEP_SECONDS
    take_turn(hosts[1], "m3", end_session=True)
    assert state_of(hosts[0])[0] == Session()


@pytest.mark.parametrize("raw", ["{not json", '{"stage": "no-such-stage"}', '["a list"]'])
def test_unreadable_session_starts_afresh(hosts, raw):
    """Corrupt state in Redis (e.g. after a bad deploy) gives a fresh dialogue, not a crash."""
    take_turn(hosts[0], "m1", tax_id=TAX_ID)
    turns = hosts[0].turns
    turns.redis.set(turns.key("session", "u1"), raw)
    assert state_of(hosts[0])[0] == Session(tax_id=TAX_ID)


def test_tokens_shared_across_hosts(hosts):
    """One access token serves every host until it expires."""
    hosts[0].tokens.put("wechat", "tok", T0 + 7200)
    assert [host.tokens.get("wechat", T0) for host in hosts] == ["tok", "tok"]
    assert hosts[1].tokens.get("wechat", T0 + 7200) is None


def test_prefixes_keep_deployments_apart(hosts, redis_url):
    """Two bots on one Redis with different prefixes do not see each other's messages."""
    other = redis_store(redis_url, Db("sqlite://"), f"{hosts[0].turns.prefix}other:")
    try:
        assert take_turn(hosts[0], "m1", reply="a") == ("new", "a")
        assert take_turn(other, "m1", reply="b") == ("new", "b")
    finally:
        other.turns.redis.delete(other.turns.key("msg", "m1"))
        other.close()


def test_durable_data_stays_in_sql(hosts):
    """Tickets live in the host's SQL store (Redis only holds hot state)."""
    ticket, created = hosts[0].tickets.create(make_ticket(kind="human", intent="human-agent"), "m1",
                                              [{"target": "ops", "payload": {"markdown": "x"}}])
    assert created and hosts[0].tickets.get(ticket.id) == ticket
    assert hosts[1].tickets.get(ticket.id) is None


def test_redis_down_is_a_clear_error():
    """An unreachable Redis raises redis' ConnectionError quickly instead of hanging."""
    store = redis_store("redis://127.0.0.1:1/0", Db("sqlite://"))
    with pytest.raises(redis.ConnectionError):
        take_turn(store, "m1")
    store.close()
