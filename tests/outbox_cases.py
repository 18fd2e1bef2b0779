"""Outbox workers wired to real clients for whichever fakes a test runs, and rows to feed them."""
from __future__ import annotations

import time

from bot.channels.robot import RobotClient
from bot.outbox import OutboxWorker
from tests.api_cases import make_cs, make_push
from tests.fakes import OPENID

TAX_ID = "91110000600037341L"


def make_worker(store, robot=None, wechat=None, clock=time.time, wecom=None, **kw) -> OutboxWorker:
    """A worker with real clients for whichever fakes are given."""
    rc = RobotClient(robot.webhook_url, timeout=5) if robot else None
    cs = make_cs(wechat, store, clock) if wechat else None
    push = make_push(wecom, store, clock) if wecom else None
    return OutboxWorker(store, rc, cs, clock=clock, wecom=push, **kw)


def queue_ops(store, clock, texts) -> list[int]:
    """Queue one ops notification per text."""
    return [store.outbox.queue({"target": "ops", "user": "", "payload": {"markdown": t}}, None, clock())
            for t in texts]


def queue_customer(store, clock, text, user=OPENID, channel=None) -> int:
    """Queue one customer message (no "channel" in the payload when None: rows from before WeCom)."""
    payload = {"text": text} if channel is None else {"text": text, "channel": channel}
    return store.outbox.queue({"target": "customer", "user": user, "payload": payload}, None, clock())


def tick(worker, clock, seconds: int, step: float = 1.0) -> None:
    """Run the worker once per `step` of fake time for `seconds`."""
    for _ in range(int(seconds / step)):
        worker.run_once()
        clock.advance(step)
