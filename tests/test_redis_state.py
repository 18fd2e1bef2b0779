"""Redis in front of SQL: hot state shared across hosts through Redis, everything kept in their
shared SQL too, so Redis is a cache that may be lost or unreachable."""
from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from bot.model import STATE_KEEP_SECONDS, Session, Stage
from bot.store.redis_state import redis_store
from bot.store.sql import Db
from tests.store_cases import make_ticket, state_of, take_turn

T0 = 1_700_000_000.0
TAX_ID = "91110000600037341L"


@pytest.fixture
def hosts(redis_url, tmp_path):
    """Two "hosts": their own connections to one SQL database and one Redis prefix; keys cleaned after."""
    prefix = f"test-redis:{uuid.uuid4().hex}:"
    pair = [redis_store(redis_url, Db(f"sqlite:///{tmp_path}/shared.db"), prefix) for _ in range(2)]
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
    assert state_of(hosts[0])[0] == replace(session, tax_id=TAX_ID)
    turns = hosts[0].turns
    assert 0 < turns.redis.ttl(turns.key("session", "u1")) <= STATE_KEEP_SECONDS
    take_turn(hosts[1], "m3", end_session=True)
    assert state_of(hosts[0])[0] == Session(tax_id=TAX_ID)  # the conversation ends, the tax ID stays


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
    """Tickets live in SQL (Redis only holds hot state): every host sees them, Redis has no copy."""
    ticket, created = hosts[0].tickets.create(make_ticket(kind="human", intent="human-agent"), "m1",
                                              [{"target": "ops", "payload": {"markdown": "x"}}])
    assert created and hosts[1].tickets.get(ticket.id) == ticket
    client = hosts[0].turns.redis
    assert list(client.scan_iter(f"{hosts[0].turns.prefix}*ticket*")) == []


def forget_redis(host) -> None:
    """What `shutdown nosave` and a restart do to this deployment's keys."""
    client = host.turns.redis
    for key in client.scan_iter(f"{host.turns.prefix}*"):
        client.delete(key)


def test_state_and_replies_survive_losing_redis(hosts):
    """After Redis lost everything, a customer mid-flow is still mid-flow and a retry still gets
    its first reply (both come back from SQL)."""
    session = Session(stage=Stage.AWAITING_TAX_ID, purpose="leqi-channel-missing", updated_at=T0)
    take_turn(hosts[0], "m1", session=session, reply="请提供税号")
    forget_redis(hosts[0])
    assert state_of(hosts[1])[0] == session
    assert take_turn(hosts[1], "m1", now=T0 + 3) == ("done", "请提供税号")


def test_sql_state_newer_than_the_redis_cache_wins(hosts):
    """A turn that ran on SQL alone (Redis unreachable) is not undone by Redis's older copy."""
    old = Session(stage=Stage.AWAITING_TAX_ID, purpose="leqi-channel-missing", updated_at=T0)
    take_turn(hosts[0], "m1", session=old)
    cut_off = redis_store("redis://127.0.0.1:1/0", hosts[0].turns.db, hosts[0].turns.prefix)
    take_turn(cut_off, "m2", now=T0 + 10, session=Session(updated_at=T0 + 10))
    assert state_of(hosts[1])[0] == Session(updated_at=T0 + 10)


def test_redis_down_falls_back_to_sql(tmp_path):
    """An unreachable Redis (1 s timeout) leaves claims, state and tokens to SQL: nothing fails."""
    store = redis_store("redis://127.0.0.1:1/0", Db(f"sqlite:///{tmp_path}/bot.db"))
    try:
        assert take_turn(store, "m1", reply="好的") == ("new", "好的")
        assert take_turn(store, "m1", now=T0 + 1) == ("done", "好的")
        store.tokens.put("wechat", "tok", T0 + 7200)
        assert store.tokens.get("wechat", T0) == "tok"
    finally:
        store.close()
