"""How outbox workers are wired: each customer row to its channel's client, clients from the config,
the daemon thread, and two workers on one database (SQLite, PostgreSQL) sending every row once.
"""
from __future__ import annotations

import time
from dataclasses import replace

import pytest

from bot.app import build_parts, outbox_worker
from bot.config import Config
from bot.model import Inbound
from bot.outbox import start_outbox_thread
from bot.service import BotService
from tests.api_cases import WECOM, wecom_config
from tests.fakes import OPENID, WECOM_USER, FakeRobot, FakeWeChat
from tests.outbox_cases import make_worker, queue_customer, queue_ops, tick
from tests.store_cases import open_backend


def _drain(urls, robot, wechat, texts) -> None:
    """Two workers (own store connections each) deliver concurrently until everything arrived."""
    stores = [open_backend({"url": url}) for url in urls]
    threads = [start_outbox_thread(make_worker(s, robot, wechat, ops_per_minute=1000, batch=3),
                                   interval=0.01) for s in stores]
    deadline = time.monotonic() + 60
    while len(robot.messages) + len(wechat.messages) < len(texts) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # let a duplicate, if any, arrive
    for thread, stop in threads:
        stop.set()
        thread.join()
    for s in stores:
        s.close()


def _two_workers_send_each_row_once(url):
    """Queue 40 mixed rows, drain them with two workers, check each arrived exactly once."""
    texts = [f"消息 {i}" for i in range(40)]
    store = open_backend({"url": url})
    for i, text in enumerate(texts):
        if i % 2:
            queue_customer(store, time.time, text)
        else:
            queue_ops(store, time.time, [text])
    store.close()
    with FakeRobot(per_minute=1000) as robot, FakeWeChat() as wechat:
        wechat.user_message(OPENID)
        wechat.quota = len(texts)  # the 48 h quota is not what this test is about
        _drain([url, url], robot, wechat, texts)
        delivered = robot.messages + [text for _, text in wechat.messages]
    assert sorted(delivered) == sorted(texts)


def test_two_workers_never_send_a_row_twice_sqlite(tmp_path):
    """SQLite: concurrent workers on one database deliver every row exactly once."""
    _two_workers_send_each_row_once(f"sqlite:///{tmp_path}/bot.db")


@pytest.mark.postgres
def test_two_workers_never_send_a_row_twice_postgres(pg_schema):
    """PostgreSQL: concurrent workers on one database deliver every row exactly once."""
    _two_workers_send_each_row_once(pg_schema)


def test_outbox_thread_delivers_and_stops(store, robot):
    """The daemon thread delivers a queued row and stops when asked."""
    queue_ops(store, time.time, ["### 新工单 T000005"])
    thread, stop = start_outbox_thread(make_worker(store, robot), interval=0.01)
    deadline = time.monotonic() + 30
    while not robot.messages and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(timeout=10)
    assert robot.messages == ["### 新工单 T000005"] and not thread.is_alive() and thread.daemon


def test_a_wecom_customer_message_is_held_for_the_next_reply(store, wechat, clock):
    """Without a WeCom push client a WeCom member's follow-up is held, never sent through WeChat."""
    row_id = store.outbox.queue({"target": "customer", "user": "zhangsan",
                                  "payload": {"text": "已处理", "channel": "wecom"}}, None, clock())
    make_worker(store, wechat=wechat, clock=clock).run_once()
    assert wechat.messages == []
    held = store.outbox.take_held("zhangsan", clock())
    assert [row.id for row in held] == [row_id]


def test_customer_rows_go_out_on_their_own_channel(store, wechat, wecom, clock):
    """A WeChat row reaches the 公众号 customer, a WeCom row the WeCom member, each once."""
    queue_customer(store, clock, "公众号：已处理")
    queue_customer(store, clock, "企业微信：已处理", user=WECOM_USER, channel="wecom")
    queue_customer(store, clock, "公众号：已回复", channel="wechat")
    tick(make_worker(store, wechat=wechat, wecom=wecom, clock=clock), clock, 5)
    assert wechat.messages == [(OPENID, "公众号：已处理"), (OPENID, "公众号：已回复")]
    assert wecom.messages == [(WECOM_USER, "企业微信：已处理")]


def test_member_outside_the_app_scope_gets_it_with_the_next_reply(store, wecom, kb, clock):
    """81013 holds the follow-up, unsent and not retried; the member's next message's reply carries it."""
    queue_customer(store, clock, "您的工单 T000001 已处理", user="LiSi", channel="wecom")
    tick(make_worker(store, wecom=wecom, clock=clock), clock, 120)
    assert (wecom.messages, wecom.calls_to(WECOM.send_path)) == ([], 1)
    service = BotService(kb, store, clock=clock)
    reply = service.handle(Inbound("LiSi", "text", text="你好", msg_id="1", created_at=clock(), channel="wecom"))
    assert reply.startswith("您的工单 T000001 已处理")
    assert store.outbox.take_held("LiSi", clock()) == []


def test_a_wecom_rate_limit_does_not_delay_wechat_rows(store, wechat, wecom, clock):
    """45009 from WeCom defers the other WeCom rows of the round, not the WeChat ones; all arrive later."""
    wecom.fail_next("/cgi-bin/message/send", errcode=45009)
    for i in range(2):
        queue_customer(store, clock, f"企业微信 {i}", user=WECOM_USER, channel="wecom")
    queue_customer(store, clock, "公众号")
    worker = make_worker(store, wechat=wechat, wecom=wecom, clock=clock)
    worker.run_once()
    assert (wechat.messages, wecom.messages) == ([(OPENID, "公众号")], [])
    assert wecom.calls_to(WECOM.send_path) == 1
    tick(worker, clock, 30)
    assert sorted(wecom.messages) == [(WECOM_USER, "企业微信 0"), (WECOM_USER, "企业微信 1")]


@pytest.mark.parametrize("secret, delivered", [("wecom-s3cret", True), ("", False)])
def test_configured_wecom_app_pushes_follow_ups(store, wecom, secret, delivered):
    """With [wecom] corp_id + secret + agent_id the app's worker pushes; without a secret it holds."""
    config = Config(wecom=replace(wecom_config(wecom), secret=secret))
    queue_customer(store, time.time, "已处理", user=WECOM_USER, channel="wecom")
    outbox_worker(build_parts(config, store)).run_once()
    assert wecom.messages == ([(WECOM_USER, "已处理")] if delivered else [])
    assert len(store.outbox.take_held(WECOM_USER, time.time())) == (0 if delivered else 1)
