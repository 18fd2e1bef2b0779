"""The Store contract on every backend: SQLite file/memory, PostgreSQL, Redis over SQLite."""
from __future__ import annotations

from dataclasses import replace

import pytest

from bot.config import StorageConfig
from bot.model import Session, Stage
from bot.store import RedisState, SqlStore, open_store
from bot.store.base import Claim, TurnRecord
from tests.store_cases import T0, all_backends, make_ticket


# ---- dedupe --------------------------------------------------------------------------------

@all_backends()
@pytest.mark.parametrize("steps", [
    [("claim", 0.0, "new")],
    [("claim", 0.0, "new"), ("claim", 1.0, "busy")],  # WeChat retry while processing
    [("claim", 0.0, "new"), ("claim", 4.5, "new"), ("claim", 5.0, "busy")],  # first worker died
    [("claim", 0.0, "new"), ("finish", 1.0, "ok"), ("claim", 9.0, "done:ok")],
    [("finish", 0.0, "late"), ("claim", 1.0, "done:late")],  # reply stored without a claim row
])
def test_claim_message_sequences(store, steps):
    """Retries get busy or the stored reply; a dead worker's claim is taken over after the lease."""
    for op, offset, expected in steps:
        if op == "finish":
            store.finish_message("m1", expected, T0 + offset)
            continue
        claim = store.claim_message("m1", T0 + offset, lease=4.0)
        assert (claim.status if claim.reply is None else f"{claim.status}:{claim.reply}") == expected


@all_backends(["sqlite", "memory", "postgres"])
def test_purge_messages_forgets_only_old_keys(store):
    """Old dedupe rows go; recent ones keep answering retries."""
    store.claim_message("old", T0)
    store.finish_message("old", "r", T0 + 1)
    store.claim_message("new", T0 + 100)
    store.finish_message("new", "r2", T0 + 101)
    assert store.purge_messages(T0 + 50) == 1
    assert store.claim_message("old", T0 + 200).status == "new"
    assert store.claim_message("new", T0 + 200).reply == "r2"


# ---- sessions and tax IDs ------------------------------------------------------------------

@all_backends()
@pytest.mark.parametrize("session", [
    Session(),
    Session(stage=Stage.AWAITING_TAX_ID, purpose="leqi-channel-missing", attempts=1,
            last_rejected="91110000600037341X", question="乐企没通道", updated_at=T0),
    Session(stage=Stage.AWAITING_CHOICE, choices=("a", "b"), question="怎么配置", updated_at=T0),
])
def test_session_round_trip_tax_id_from_users(store, session):
    """State survives; the tax ID comes from remember/forget, never from the saved session."""
    store.save_session("u1", replace(session, tax_id="ignored"))
    assert store.load_session("u1") == session
    store.remember_tax_id("u1", "91110000600037341L")
    assert store.load_session("u1").tax_id == "91110000600037341L"
    store.end_session("u1")
    assert store.load_session("u1") == Session(tax_id="91110000600037341L")
    store.forget_tax_id("u1")
    assert store.load_session("u1") == Session()
    assert store.load_session("someone-else") == Session()


@all_backends()
def test_transcript_keeps_last_lines_oldest_first(store):
    """recent_messages returns the newest `limit` lines of that user only, in order."""
    for i in range(12):
        store.log_message("u1", "in" if i % 2 == 0 else "out", f"第{i}句", T0 + i)
    store.log_message("u2", "in", "别人", T0)
    lines = store.recent_messages("u1", limit=10)
    assert [line["text"] for line in lines] == [f"第{i}句" for i in range(2, 12)]
    assert lines[0] == {"direction": "in", "text": "第2句", "at": T0 + 2}
    assert store.recent_messages("nobody") == []


# ---- analytics and tokens ------------------------------------------------------------------

@all_backends()
def test_report_counts_questions_hits_and_tickets(store):
    """Authors see repeated unanswered questions first, hits per intent, tickets per status."""
    for i, question in enumerate(["红字发票怎么开", "收费吗", "红字发票怎么开"]):
        store.log_unanswered("u1", question, T0 + i)
    for intent in ["greeting", "leqi-ids-swapped", "greeting"]:
        store.log_hit(intent, T0)
    store.create_ticket(make_ticket(), "k1", [])
    assert store.report() == {
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
        store.put_token("wechat", value, expires_at)
    assert store.get_token("wechat", now) == expected
    assert store.get_token("wecom", now) is None


# ---- open_store ----------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///{tmp}/new/dir/bot.db"])
def test_open_store_sqlite(tmp_path, url):
    """SQLite works in memory or in a file whose folder does not exist yet."""
    store = open_store(StorageConfig(url=url.format(tmp=tmp_path)))
    assert isinstance(store, SqlStore)
    store.remember_tax_id("u1", "X")
    assert store.load_session("u1").tax_id == "X"
    store.close()


def test_open_store_with_redis(tmp_path, redis_url):
    """A redis_url fronts the SQL store with RedisState."""
    store = open_store(StorageConfig(url=f"sqlite:///{tmp_path}/bot.db", redis_url=redis_url))
    assert isinstance(store, RedisState) and isinstance(store.inner, SqlStore)
    store.close()


def test_open_store_rejects_unknown_database():
    """A URL for an unsupported database is a clear error."""
    with pytest.raises(ValueError, match="unsupported storage url"):
        open_store(StorageConfig(url="mysql://root@127.0.0.1/bot"))


# ---- one message's turn --------------------------------------------------------------------

@all_backends()
def test_a_finished_turn_writes_reply_state_transcript_and_analytics_together(store):
    """One handled message: retries get its reply; state, transcript, hits, questions are kept."""
    assert store.claim_message("wechat:m1", T0).status == "new"
    state = Session(stage=Stage.AWAITING_TAX_ID, purpose="leqi-channel-missing", updated_at=T0)
    store.finish_turn(TurnRecord(user="u1", now=T0, key="wechat:m1", reply="请回复税号", session=state,
                                 lines=(("in", "乐企通道不显示"), ("out", "请回复税号")),
                                 hits=("leqi-channel-missing",), unanswered=("收费吗",)))
    assert store.claim_message("wechat:m1", T0 + 1) == Claim("done", "请回复税号")
    assert store.load_turn("u1") == (state, False)
    assert [m["text"] for m in store.recent_messages("u1")] == ["乐企通道不显示", "请回复税号"]
    report = store.report()
    assert report["hits"] == {"leqi-channel-missing": 1} and report["unanswered"][0]["text"] == "收费吗"


@all_backends()
def test_a_turn_can_end_the_session_and_sees_held_messages(store):
    """Unsubscribe ends the state; a held follow-up is visible to the next turn."""
    store.save_session("u1", Session(stage=Stage.AWAITING_CHOICE, updated_at=T0))
    store.finish_turn(TurnRecord(user="u1", now=T0, end_session=True))
    assert store.load_turn("u1") == (Session(), False)
    row_id = store.queue_message({"target": "customer", "user": "u1", "payload": {"text": "已处理"}}, None, T0)
    store.claim_outbox(T0, target="customer")
    store.outbox_hold(row_id, "45015")
    assert store.load_turn("u1")[1] is True and store.has_held("u2") is False


@all_backends()
def test_begin_turn_claims_and_loads_in_one_step(store):
    """The first attempt gets the state; a concurrent retry is busy; a later one gets the reply."""
    state = Session(stage=Stage.AWAITING_TAX_ID, purpose="leqi-channel-missing", updated_at=T0)
    store.save_session("u1", state)
    store.remember_tax_id("u1", "91110000600037341L")
    assert store.begin_turn("wechat:m1", "u1", T0) == (Claim("new"), replace(state, tax_id="91110000600037341L"), False)
    assert store.begin_turn("wechat:m1", "u1", T0 + 1)[0] == Claim("busy")
    store.finish_turn(TurnRecord(user="u1", now=T0 + 1, key="wechat:m1", reply="已提交工单"))
    assert store.begin_turn("wechat:m1", "u1", T0 + 2)[0] == Claim("done", "已提交工单")
