"""Outbox delivery by one worker: real store, real clients, fake WeChat and robot servers on 127.0.0.1."""
from __future__ import annotations

import logging

import pytest

from bot.channels.robot import RobotClient
from bot.outbox import MAX_BACKOFF, OutboxWorker, backoff
from tests.api_cases import WECHAT
from tests.fakes import OPENID
from tests.outbox_cases import TAX_ID, make_worker, queue_customer, queue_ops, tick
from tests.store_cases import pending, take_turn


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
    assert wechat.calls_to(WECHAT.send_path) == 1
    held = store.outbox.take_held(OPENID, clock())
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
    """A row claimed by a worker that died is delivered by another once its 12 s lease is over,
    once; the rows it had not claimed yet go out at once."""
    queue_ops(store, clock, ["### 新工单 T000009", "### 新工单 T000010"])
    assert len(store.outbox.claim(clock(), 1)) == 1  # the worker that claimed it is gone
    worker = make_worker(store, robot, clock=clock)
    tick(worker, clock, 12)
    assert robot.messages == ["### 新工单 T000010"]
    tick(worker, clock, 2)
    assert robot.messages == ["### 新工单 T000010", "### 新工单 T000009"]


@pytest.mark.parametrize("payload", [{}, {"text": "wrong key"}, {"markdown": None}, {"markdown": " "}])
def test_bad_row_does_not_block_the_others(store, robot, clock, payload, caplog):
    """An unusable ops row is logged by id and kept; the good rows behind it go out."""
    store.outbox.queue({"target": "ops", "user": "", "payload": payload}, None, clock())
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
    assert [row.payload["text"] for row in store.outbox.take_held(OPENID, clock())] == ["已处理"]
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


def test_a_row_that_keeps_failing_permanently_is_given_up_and_counted(store, robot, clock):
    """After `give_up_after` non-retryable failures the row is dead: no more tries, visible in the report."""
    queue_ops(store, clock, ["### 新工单 T000009"])
    worker = make_worker(store, robot, clock=clock, give_up_after=2)
    robot.key = "rotated-key"
    tick(worker, clock, 3000, step=10)
    assert robot.rejected == [93000, 93000]
    assert store.reports.report()["outbox"] == {"ops:dead": 1}


def test_processed_message_keys_are_purged_by_the_worker(store, clock):
    """Dedupe keys older than two days are cleaned up by the delivery loop."""
    take_turn(store, "wechat:old", now=clock() - 3 * 24 * 3600, reply="old")
    take_turn(store, "wechat:new", now=clock(), reply="new")
    make_worker(store, clock=clock).run_once()
    assert take_turn(store, "wechat:old", now=clock(), reply="again") == ("new", "again")
    assert take_turn(store, "wechat:new", now=clock()) == ("done", "new")


def test_a_slow_robot_gets_each_message_at_most_twice_and_holds_no_one_up(store, robot, clock):
    """The robot takes every message but answers after the client's timeout (maybe delivered):
    each row is tried once, once more 60 s later, then counted sent; the second and third
    tickets go out in the same round as the first."""
    texts = [f"### 新工单 T00002{i}" for i in range(3)]
    queue_ops(store, clock, texts)
    worker = OutboxWorker(store, RobotClient(robot.webhook_url, timeout=0.2), None, clock=clock)
    robot.delay = 0.4
    worker.run_once()
    assert robot.messages == texts
    tick(worker, clock, 200)
    assert robot.messages == texts + texts
    assert pending(store) == []


def test_a_maybe_delivered_row_keeps_its_count_through_an_outage(store, robot, clock):
    """Unanswered once, then a 500, then unanswered again: the robot got it twice, no third time."""
    queue_ops(store, clock, ["### 新工单 T000030"])
    worker = OutboxWorker(store, RobotClient(robot.webhook_url, timeout=0.2), None, clock=clock)
    robot.delay = 0.4
    worker.run_once()
    robot.delay, robot.mode = 0.0, "500"
    tick(worker, clock, 70)
    robot.delay, robot.mode = 0.4, "up"
    tick(worker, clock, 700)
    assert robot.messages == ["### 新工单 T000030"] * 2
