"""The store's turns, tokens and report on every backend: SQLite file/memory, PostgreSQL, Redis over SQLite."""
from __future__ import annotations

from dataclasses import replace

import pytest

from bot.config import StorageConfig
from bot.model import Session, Stage
from bot.store import open_store
from bot.store.base import CLAIM_LEASE_SECONDS, TurnRecord
from bot.store.redis_state import RedisTurns
from bot.store.sql_turns import SqlTurns
from tests.store_cases import T0, all_backends, make_ticket, state_of, take_turn

TAX_ID = "91110000600037341L"
AWAITING = Session(stage=Stage.AWAITING_TAX_ID, purpose="leqi-channel-missing", attempts=1,
                   last_rejected="91110000600037341X", question="乐企没通道", updated_at=T0)


# ---- dedupe --------------------------------------------------------------------------------

@all_backends()
@pytest.mark.parametrize("reply", ["请回复税号", ""])
def test_a_retry_after_the_commit_gets_the_stored_reply_without_running_again(store, reply):
    """WeChat's retry of an answered message is answered from the store ("" = `success`)."""
    assert take_turn(store, "wechat:m1", reply=reply) == ("new", reply)
    ran = []
    assert take_turn(store, "wechat:m1", now=T0 + 60, work=ran.append) == ("done", reply)
    assert ran == [] and take_turn(store, "wechat:m2", reply="x") == ("new", "x")


@all_backends()
def test_of_two_overlapping_attempts_one_acts_and_both_answer_alike(store):
    """A retry that arrives while the first attempt runs: one attempt's work runs, its reply is kept."""
    ran = []

    def work(name):
        """An attempt's work: remember that it ran."""
        return lambda tx: ran.append(name) or TurnRecord(reply=f"reply {name}")
    with store.turns.turn("wechat:m1", "u1", T0) as first:
        status, reply = take_turn(store, "wechat:m1", now=T0 + 1, work=work("second"))
        answers = [first.commit(work("first"))] + ([] if status == "busy" else [reply])
    assert len(ran) == 1  # SQL: the first commit wins; Redis: the first claim (the other is busy)
    assert answers == [f"reply {ran[0]}"] * len(answers)
    assert take_turn(store, "wechat:m1", now=T0 + 2) == ("done", f"reply {ran[0]}")


@all_backends()
def test_a_failed_attempt_leaves_nothing_and_a_later_retry_processes_the_message(store):
    """Work that raises rolls the message back: no ticket, no reply; the retry (after the lease) acts."""
    def crash(tx):
        """Open a ticket, then fail."""
        tx.tickets.create(make_ticket(), "wechat:m1", [])
        raise RuntimeError("worker bug")
    with pytest.raises(RuntimeError):
        take_turn(store, "wechat:m1", work=crash)
    assert store.tickets.list() == []
    later = T0 + CLAIM_LEASE_SECONDS + 1
    assert take_turn(store, "wechat:m1", now=later, reply="好的") == ("new", "好的")


@all_backends(["sqlite", "memory", "postgres"])
def test_purge_messages_forgets_only_old_keys(store):
    """Old dedupe records go; recent ones keep answering retries."""
    take_turn(store, "old", now=T0, reply="r")
    take_turn(store, "new", now=T0 + 100, reply="r2")
    assert store.turns.purge(T0 + 50, T0) == 1
    assert take_turn(store, "old", now=T0 + 200, reply="again") == ("new", "again")
    assert take_turn(store, "new", now=T0 + 200) == ("done", "r2")


# ---- state, tax ID, transcript -----------------------------------------------------------

@all_backends()
@pytest.mark.parametrize("session", [
    Session(), AWAITING,
    Session(stage=Stage.AWAITING_CHOICE, choices=("a", "b"), question="怎么配置", updated_at=T0),
])
def test_state_round_trip_tax_id_kept_apart(store, session):
    """State survives a turn; the tax ID is remembered and forgotten on its own, never saved with it."""
    take_turn(store, "k1", session=replace(session, tax_id="ignored"))
    assert state_of(store) == (session, False)
    take_turn(store, "k2", tax_id=TAX_ID)
    assert state_of(store)[0] == replace(session, tax_id=TAX_ID)
    take_turn(store, "k3", end_session=True)
    assert state_of(store)[0] == Session(tax_id=TAX_ID)
    take_turn(store, "k4", tax_id="")
    assert state_of(store)[0] == Session() and state_of(store, "someone-else")[0] == Session()


@all_backends()
def test_transcript_keeps_last_lines_oldest_first(store):
    """recent_messages returns the newest `limit` lines of that user only, in order; so does the turn's."""
    for i in range(6):
        take_turn(store, f"k{i}", now=T0 + i, lines=(("in", f"第{2 * i}句"), ("out", f"第{2 * i + 1}句")))
    take_turn(store, "other", user="u2", lines=(("in", "别人"),))
    lines = store.turns.recent_messages("u1", limit=10)
    assert [line["text"] for line in lines] == [f"第{i}句" for i in range(2, 12)]
    assert lines[0] == {"direction": "in", "text": "第2句", "at": T0 + 1}
    seen = []
    take_turn(store, "k9", now=T0 + 9, work=lambda tx: seen.append(tx.transcript(2)) or TurnRecord())
    assert [line["text"] for line in seen[0]] == ["第10句", "第11句"]
    assert store.turns.recent_messages("nobody") == []


@all_backends()
def test_work_writes_tickets_and_outbox_in_the_message_transaction(store):
    """A ticket opened by a message and the held follow-ups it takes commit with its reply."""
    row = store.outbox.queue({"target": "customer", "user": "u1", "payload": {"text": "已处理"}}, None, T0)
    store.outbox.claim(T0, target="customer")
    store.outbox.hold(row, "45015")
    assert state_of(store) == (Session(), True) and state_of(store, "u2")[1] is False

    def work(tx):
        """Open a ticket with its ops row and take the held text."""
        ticket, _ = tx.tickets.create(make_ticket(), "wechat:m1", lambda t: [
            {"target": "ops", "payload": {"markdown": t.number}}])
        held = [r.payload["text"] for r in tx.outbox.take_held("u1", T0)]
        return TurnRecord(reply=" ".join([ticket.number, *held]))
    assert take_turn(store, "wechat:m1", work=work) == ("new", "T000001 已处理")
    assert [t.number for t in store.tickets.list(user="u1")] == ["T000001"]
    assert state_of(store)[1] is False
    assert [r.payload for r in store.outbox.claim(T0, target="ops")] == [{"markdown": "T000001"}]


# ---- analytics and tokens ------------------------------------------------------------------

@all_backends()
def test_report_counts_questions_hits_and_tickets(store):
    """Authors see repeated unanswered questions first, hits per intent, tickets per status."""
    for i, question in enumerate(["红字发票怎么开", "收费吗", "红字发票怎么开"]):
        take_turn(store, f"q{i}", now=T0 + i, unanswered=(question,))
    take_turn(store, "h", hits=("greeting", "leqi-ids-swapped", "greeting"))
    store.tickets.create(make_ticket(), "k1", [])
    assert store.reports.report() == {
        "unanswered": [{"text": "红字发票怎么开", "count": 2, "last_at": T0 + 2},
                       {"text": "收费吗", "count": 1, "last_at": T0 + 1}],
        "hits": {"greeting": 2, "leqi-ids-swapped": 1},
        "tickets": {"open": 1},
        "outbox": {},
    }


@all_backends()
@pytest.mark.parametrize("writes, now, expected", [
    ([("tok-1", T0 + 7200)], T0, "tok-1"),
    ([("tok-1", T0 + 7200)], T0 + 7200, None),  # expired
    ([("tok-1", T0 + 7200), ("tok-2", T0 + 9000)], T0 + 7300, "tok-2"),  # refreshed
    ([("tok-1", T0 + 7200), ("", 0.0)], T0, None),  # invalidated after a 40001
    ([], T0, None),
])
def test_tokens_valid_until_expiry(store, writes, now, expected):
    """Workers share one access token until it expires or is invalidated."""
    for value, expires_at in writes:
        store.tokens.put("wechat", value, expires_at)
    assert store.tokens.get("wechat", now) == expected
    assert store.tokens.get("wecom", now) is None


# ---- open_store ----------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///{tmp}/new/dir/bot.db"])
def test_open_store_sqlite(tmp_path, url):
    """SQLite works in memory or in a file whose folder does not exist yet."""
    store = open_store(StorageConfig(url=url.format(tmp=tmp_path)))
    assert isinstance(store.turns, SqlTurns)
    take_turn(store, "k", tax_id="X")
    assert state_of(store)[0].tax_id == "X"
    store.close()


def test_open_store_with_redis(tmp_path, redis_url):
    """A redis_url puts turns in Redis in front of the SQL tables."""
    store = open_store(StorageConfig(url=f"sqlite:///{tmp_path}/bot.db", redis_url=redis_url))
    assert isinstance(store.turns, RedisTurns)
    store.close()


def test_open_store_rejects_unknown_database():
    """A URL for an unsupported database is a clear error."""
    with pytest.raises(ValueError, match="unsupported storage url"):
        open_store(StorageConfig(url="mysql://root@127.0.0.1/bot"))
