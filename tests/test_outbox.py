"""Outbox delivery end to end: real store, real clients, fake WeChat and robot servers on 127.0.0.1."""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import replace

import psycopg
import pytest

from bot.app import build_parts, outbox_worker
from bot.channels.robot import RobotClient
from bot.channels.wechat_api import CustomerService
from bot.channels.wecom_api import WeComPush
from bot.config import Config, WeChatConfig, WeComConfig
from bot.model import Inbound
from bot.outbox import MAX_BACKOFF, OutboxWorker, backoff, start_outbox_thread
from bot.service import BotService
from bot.store.sql import SqlStore
from tests.fakes import OPENID, WECOM_USER, FakeRobot, FakeWeChat

TAX_ID = "91110000600037341L"


@pytest.fixture
def store_url(tmp_path):
    """A fresh SQLite database file."""
    return f"sqlite:///{tmp_path}/bot.db"


@pytest.fixture
def store(store_url):
    """The real store."""
    store = SqlStore(store_url)
    yield store
    store.close()


@pytest.fixture
def pg_store_url(postgres_url):
    """A PostgreSQL URL whose tables live in a fresh schema, dropped afterwards."""
    schema = f"outbox_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield f"{postgres_url}{'&' if '?' in postgres_url else '?'}options=-csearch_path%3D{schema}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def wecom_config(fake) -> WeComConfig:
    """The [wecom] section of the app `fake` serves."""
    return WeComConfig(corp_id=fake.corp_id, agent_id=str(fake.agent_id), secret=fake.secret,
                       api_base_url=fake.url)


def make_worker(store, robot=None, wechat=None, clock=time.time, wecom=None, **kw) -> OutboxWorker:
    """A worker with real clients for whichever fakes are given."""
    rc = RobotClient(robot.webhook_url, timeout=5) if robot else None
    cs = None
    if wechat:
        cfg = WeChatConfig(app_id=wechat.app_id, app_secret=wechat.secret, api_base_url=wechat.url)
        cs = CustomerService(cfg, store, clock=clock)
    push = WeComPush(wecom_config(wecom), store, clock=clock) if wecom else None
    return OutboxWorker(store, rc, cs, clock=clock, wecom=push, **kw)


def queue_ops(store, clock, texts) -> list[int]:
    """Queue one ops notification per text."""
    return [store.queue_message({"target": "ops", "user": "", "payload": {"markdown": t}}, None, clock())
            for t in texts]


def queue_customer(store, clock, text, user=OPENID, channel=None) -> int:
    """Queue one customer message (no "channel" in the payload when None: rows from before WeCom)."""
    payload = {"text": text} if channel is None else {"text": text, "channel": channel}
    return store.queue_message({"target": "customer", "user": user, "payload": payload}, None, clock())


def tick(worker, clock, seconds: int, step: float = 1.0) -> None:
    """Run the worker once per `step` of fake time for `seconds`."""
    for _ in range(int(seconds / step)):
        worker.run_once()
        clock.advance(step)


@pytest.mark.parametrize("attempts, delay", [(0, 5), (1, 10), (3, 40), (6, 320), (7, MAX_BACKOFF), (500, MAX_BACKOFF)])
def test_backoff_doubles_up_to_ten_minutes(attempts, delay):
    """Retries wait 5 s, 10 s, 20 s … and never more than 10 minutes."""
    assert backoff(attempts) == delay


def test_delivers_ops_and_customer_rows_once(store, robot, wechat, clock):
    """Queued rows reach the robot and the customer, and a second round sends nothing."""
    queue_ops(store, clock, [f"### 新工单 T000001\n> 税号：{TAX_ID}"])
    queue_customer(store, clock, "您的工单 T000001 已处理")
    worker = make_worker(store, robot, wechat, clock)
    assert worker.run_once() == 2
    assert worker.run_once() == 0
    assert robot.messages == [f"### 新工单 T000001\n> 税号：{TAX_ID}"]
    assert wechat.messages == [(OPENID, "您的工单 T000001 已处理")]


def test_robot_outage_retries_with_backoff(store, robot, clock):
    """While the robot is down a row is retried 5 s, 10 s, 20 s … apart, capped at 10 minutes."""
    queue_ops(store, clock, ["### 新工单 T000001"])
    worker, start, tried_at = make_worker(store, robot, clock=clock), clock(), []
    robot.down("500")
    for _ in range(1300):
        calls = len(robot.calls)
        worker.run_once()
        if len(robot.calls) > calls:
            tried_at.append(clock() - start)
        clock.advance(1)
    assert tried_at == [0, 5, 15, 35, 75, 155, 315, 635, 1235]
    assert robot.messages == []


@pytest.mark.parametrize("how, requests_while_down", [("500", 5), ("refused", 0)])
def test_robot_outage_loses_nothing_and_sends_nothing_twice(store, robot, clock, how, requests_while_down):
    """Rows queued during an outage are all delivered, once each, in order, when it ends.

    While down, each round tries one row only (at 0, 5, 15, 35, 75 s), not the whole batch.
    """
    texts = [f"### 新工单 T00000{i}" for i in range(1, 6)]
    queue_ops(store, clock, texts)
    worker = make_worker(store, robot, clock=clock)
    robot.down(how)
    tick(worker, clock, 120)
    assert len(robot.calls) == requests_while_down
    robot.up()
    tick(worker, clock, 700)
    assert robot.messages == texts


def test_closed_window_holds_for_the_next_passive_reply(store, wechat, clock):
    """45015 keeps the message, unsent and not retried, until the customer writes again."""
    wechat.windows.clear()
    queue_customer(store, clock, "您的工单 T000001 已处理")
    worker = make_worker(store, wechat=wechat, clock=clock)
    tick(worker, clock, 120)
    assert sum(call["path"].endswith("/custom/send") for call in wechat.calls) == 1
    held = store.take_held(OPENID, clock())
    assert [row.payload["text"] for row in held] == ["您的工单 T000001 已处理"]


def test_robot_rate_limit_is_respected(store, robot, clock):
    """25 notifications: at most 20 reach the robot in the first minute, all 25 soon after, none refused."""
    texts = [f"### 新工单 T{i:06d}" for i in range(25)]
    queue_ops(store, clock, texts)
    worker = make_worker(store, robot, clock=clock)
    tick(worker, clock, 59)
    assert len(robot.messages) <= 20
    tick(worker, clock, 120)
    assert sorted(robot.messages) == texts
    assert robot.rejected == []


def test_rows_left_sending_by_a_killed_worker_are_requeued(store, robot, clock):
    """A row claimed by a worker that died is delivered by another after 60 s, once."""
    queue_ops(store, clock, ["### 新工单 T000009"])
    assert len(store.claim_outbox(clock())) == 1  # the worker that claimed it is gone
    worker = make_worker(store, robot, clock=clock)
    tick(worker, clock, 60)
    assert robot.messages == []
    tick(worker, clock, 5)
    assert robot.messages == ["### 新工单 T000009"]


@pytest.mark.parametrize("payload", [{}, {"text": "wrong key"}, {"markdown": None}, {"markdown": " "}])
def test_bad_row_does_not_block_the_others(store, robot, clock, payload, caplog):
    """An unusable ops row is logged by id and kept; the good rows behind it go out."""
    store.queue_message({"target": "ops", "user": "", "payload": payload}, None, clock())
    queue_ops(store, clock, ["### 新工单 T000002"])
    tick(make_worker(store, robot, clock=clock), clock, 5)
    assert robot.messages == ["### 新工单 T000002"]
    assert "row 1" in caplog.text


def test_non_retryable_robot_error_waits_longest_and_loses_nothing(store, robot, clock):
    """A wrong webhook key keeps the row, retried every 10 minutes until the key is fixed."""
    queue_ops(store, clock, ["### 新工单 T000003"])
    worker = make_worker(store, robot, clock=clock)
    right_key, robot.key = robot.key, "rotated-key"
    tick(worker, clock, 900)
    assert robot.rejected == [93000, 93000]
    robot.key = right_key
    tick(worker, clock, 600)
    assert robot.messages == ["### 新工单 T000003"]


def test_without_robot_ops_rows_wait_for_one(store, robot, wechat, clock):
    """A worker without a robot (no [ops]) delivers customer rows and leaves ops rows for later."""
    queue_ops(store, clock, ["### 新工单 T000004"])
    queue_customer(store, clock, "已处理")
    tick(make_worker(store, wechat=wechat, clock=clock), clock, 5)
    assert (robot.messages, wechat.messages) == ([], [(OPENID, "已处理")])
    tick(make_worker(store, robot, clock=clock), clock, 5)
    assert robot.messages == ["### 新工单 T000004"]


def test_without_customer_api_messages_are_held(store, robot, clock):
    """A worker without WeChat API access holds customer rows for the next passive reply."""
    queue_customer(store, clock, "已处理")
    queue_ops(store, clock, ["### 新工单 T000004"])
    tick(make_worker(store, robot, clock=clock), clock, 5)
    assert [row.payload["text"] for row in store.take_held(OPENID, clock())] == ["已处理"]
    assert robot.messages == ["### 新工单 T000004"]


def test_logs_never_contain_the_payload(store, robot, wechat, clock, caplog):
    """Delivery, failure and hold logs name rows, never the tax ID in the markdown or the text."""
    caplog.set_level(logging.DEBUG, logger="bot")
    queue_ops(store, clock, [f"### 新工单\n> 税号：{TAX_ID}"] * 2)
    queue_customer(store, clock, f"税号 {TAX_ID} 已切换", user="o-no-window")
    worker = make_worker(store, robot, wechat, clock)
    robot.down("500")
    tick(worker, clock, 10)
    robot.up()
    tick(worker, clock, 30)
    assert len(robot.messages) == 2
    assert "row 1" in caplog.text and TAX_ID not in caplog.text


def _drain(urls, robot, wechat, texts) -> None:
    """Two workers (own store connections each) deliver concurrently until everything arrived."""
    stores = [SqlStore(url) for url in urls]
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
    store = SqlStore(url)
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


def test_two_workers_never_send_a_row_twice_sqlite(store_url):
    """SQLite: concurrent workers on one database deliver every row exactly once."""
    _two_workers_send_each_row_once(store_url)


@pytest.mark.postgres
def test_two_workers_never_send_a_row_twice_postgres(pg_store_url):
    """PostgreSQL: concurrent workers on one database deliver every row exactly once."""
    _two_workers_send_each_row_once(pg_store_url)


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
    row_id = store.queue_message({"target": "customer", "user": "zhangsan",
                                  "payload": {"text": "已处理", "channel": "wecom"}}, None, clock())
    make_worker(store, wechat=wechat, clock=clock).run_once()
    assert wechat.messages == []
    held = store.take_held("zhangsan", clock())
    assert [row.id for row in held] == [row_id]


def test_a_row_that_keeps_failing_permanently_is_given_up_and_counted(store, robot, clock):
    """After `give_up_after` non-retryable failures the row is dead: no more tries, visible in the report."""
    queue_ops(store, clock, ["### 新工单 T000009"])
    worker = make_worker(store, robot, clock=clock, give_up_after=2)
    robot.key = "rotated-key"
    tick(worker, clock, 3000, step=10)
    assert robot.rejected == [93000, 93000]
    assert store.report()["outbox"] == {"ops:dead": 1}


def test_processed_message_keys_are_purged_by_the_worker(store, clock):
    """Dedupe keys older than two days are cleaned up by the delivery loop."""
    store.claim_message("wechat:old", clock() - 3 * 24 * 3600)
    store.claim_message("wechat:new", clock())
    make_worker(store, clock=clock).run_once()
    assert store.claim_message("wechat:old", clock()).status == "new"
    assert store.claim_message("wechat:new", clock()).status == "busy"


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
    assert (wecom.messages, sum(call["path"] == "/cgi-bin/message/send" for call in wecom.calls)) == ([], 1)
    service = BotService(kb, store, clock=clock)
    reply = service.handle(Inbound("LiSi", "text", text="你好", msg_id="1", created_at=clock(), channel="wecom"))
    assert reply.startswith("您的工单 T000001 已处理")
    assert store.take_held("LiSi", clock()) == []


def test_a_wecom_rate_limit_does_not_delay_wechat_rows(store, wechat, wecom, clock):
    """45009 from WeCom defers the other WeCom rows of the round, not the WeChat ones; all arrive later."""
    wecom.fail_next("/cgi-bin/message/send", errcode=45009)
    for i in range(2):
        queue_customer(store, clock, f"企业微信 {i}", user=WECOM_USER, channel="wecom")
    queue_customer(store, clock, "公众号")
    worker = make_worker(store, wechat=wechat, wecom=wecom, clock=clock)
    worker.run_once()
    assert (wechat.messages, wecom.messages) == ([(OPENID, "公众号")], [])
    assert sum(call["path"] == "/cgi-bin/message/send" for call in wecom.calls) == 1
    tick(worker, clock, 30)
    assert sorted(wecom.messages) == [(WECOM_USER, "企业微信 0"), (WECOM_USER, "企业微信 1")]


@pytest.mark.parametrize("secret, delivered", [("wecom-s3cret", True), ("", False)])
def test_configured_wecom_app_pushes_follow_ups(store, wecom, secret, delivered):
    """With [wecom] corp_id + secret + agent_id the app's worker pushes; without a secret it holds."""
    config = Config(wecom=replace(wecom_config(wecom), secret=secret))
    queue_customer(store, time.time, "已处理", user=WECOM_USER, channel="wecom")
    outbox_worker(build_parts(config, store)).run_once()
    assert wecom.messages == ([(WECOM_USER, "已处理")] if delivered else [])
    assert len(store.take_held(WECOM_USER, time.time())) == (0 if delivered else 1)
