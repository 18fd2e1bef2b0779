"""RedisState: hot state shared across hosts through Redis, durable data in each host's SQL store."""
from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
import redis

from bot.model import STATE_KEEP_SECONDS, Session, Stage, Ticket
from bot.store import RedisState, SqlStore

T0 = 1_700_000_000.0


@pytest.fixture
def hosts(redis_url):
    """Two "hosts": separate in-memory SQL stores sharing one Redis prefix; keys cleaned after."""
    prefix = f"test-redis:{uuid.uuid4().hex}:"
    pair = [RedisState(redis_url, SqlStore("sqlite://"), prefix=prefix) for _ in range(2)]
    yield pair
    client = pair[0].redis
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    for host in pair:
        host.close()


@pytest.mark.parametrize("first, second, expected", [
    ((0, T0), (1, T0 + 1), "busy"),  # WeChat retry lands on the other host
    ((0, T0), (1, T0 + 5), "new"),  # the first host died mid-message
    ((0, T0), (0, T0 + 1), "busy"),
])
def test_claims_are_shared_across_hosts(hosts, first, second, expected):
    """A message claimed on one host is busy (or taken over once stale) on another."""
    assert hosts[first[0]].claim_message("m1", first[1], lease=4.0).status == "new"
    assert hosts[second[0]].claim_message("m1", second[1], lease=4.0).status == expected


def test_reply_is_shared_and_dedupe_keys_expire(hosts):
    """Another host answers a retry with the stored reply; dedupe keys do not live forever."""
    hosts[0].claim_message("m1", T0)
    hosts[0].finish_message("m1", "您好", T0 + 1)
    assert hosts[1].claim_message("m1", T0 + 2) == hosts[0].claim_message("m1", T0 + 2)
    assert hosts[1].claim_message("m1", T0 + 2).reply == "您好"
    assert 0 < hosts[0].redis.ttl(hosts[0]._key("msg", "m1")) <= hosts[0].message_ttl


def test_session_shared_tax_id_from_sql(hosts):
    """The dialogue state follows the user across hosts (kept a day; the dialogue ends stale stages); the tax ID is SQL's."""
    session = Session(stage=Stage.AWAITING_TAX_ID, purpose="leqi-channel-missing", updated_at=T0)
    hosts[0].save_session("u1", session)
    hosts[1].remember_tax_id("u1", "91110000600037341L")
    assert hosts[1].load_session("u1") == replace(session, tax_id="91110000600037341L")
    assert hosts[0].load_session("u1") == session  # host 0's SQL has no tax ID for u1
    assert 0 < hosts[0].redis.ttl(hosts[0]._key("session", "u1")) <= STATE_KEEP_SECONDS
    hosts[1].end_session("u1")
    assert hosts[0].load_session("u1") == Session()


@pytest.mark.parametrize("raw", ["{not json", '{"stage": "no-such-stage"}', '["a list"]'])
def test_unreadable_session_starts_afresh(hosts, raw):
    """Corrupt state in Redis (e.g. after a bad deploy) gives a fresh dialogue, not a crash."""
    hosts[0].remember_tax_id("u1", "91110000600037341L")
    hosts[0].redis.set(hosts[0]._key("session", "u1"), raw)
    assert hosts[0].load_session("u1") == Session(tax_id="91110000600037341L")


def test_tokens_shared_across_hosts(hosts):
    """One access token serves every host until it expires."""
    hosts[0].put_token("wechat", "tok", T0 + 7200)
    assert [host.get_token("wechat", T0) for host in hosts] == ["tok", "tok"]
    assert hosts[1].get_token("wechat", T0 + 7200) is None


def test_prefixes_keep_deployments_apart(hosts, redis_url):
    """Two bots on one Redis with different prefixes do not see each other's messages."""
    other = RedisState(redis_url, SqlStore("sqlite://"), prefix=f"{hosts[0].prefix}other:")
    try:
        assert hosts[0].claim_message("m1", T0).status == "new"
        assert other.claim_message("m1", T0).status == "new"
    finally:
        other.redis.delete(other._key("msg", "m1"))
        other.close()


def test_durable_data_stays_in_sql(hosts):
    """Tickets live in the host's SQL store (Redis only holds hot state)."""
    ticket, created = hosts[0].create_ticket(
        Ticket(id=0, user="u1", kind="human", intent="human-agent", status="open", created_at=T0),
        "m1", [{"target": "ops", "payload": {"markdown": "x"}}])
    assert created and hosts[0].inner.get_ticket(ticket.id) == ticket
    assert hosts[1].get_ticket(ticket.id) is None


def test_redis_down_is_a_clear_error():
    """An unreachable Redis raises redis' ConnectionError quickly instead of hanging."""
    store = RedisState("redis://127.0.0.1:1/0", SqlStore("sqlite://"))
    with pytest.raises(redis.ConnectionError):
        store.claim_message("m1", T0)
    store.close()
