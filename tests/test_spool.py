"""The local spool (bot.spool): messages the store could not take are kept, then processed in order."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

import pytest
from sqlalchemy.exc import OperationalError

from bot.model import Inbound, Replay, Stamp
from bot.spool import Spool, SpoolingHandler

RECEIVED = "消息已收到"


def message(n: int, user: str = "oA", text: str = "你好") -> Inbound:
    """The n-th text message of `user`."""
    return Inbound(user=user, kind="text", text=f"{text}{n}", msg_id=f"m{n}", created_at=float(n))


@dataclass
class FlakyService:
    """A service whose store is down while `down` is set; records what it handled."""

    down: bool = False
    handled: list = field(default_factory=list)
    pushed: list = field(default_factory=list)
    broken: set = field(default_factory=set)
    replays: set = field(default_factory=set)

    def handle(self, inbound: Inbound, push_reply: bool = False) -> str:
        """Reply, or fail as a stopped database does."""
        if self.down:
            raise OperationalError("INSERT", {}, Exception("server closed the connection"))
        if inbound.msg_id in self.broken:
            raise KeyError("a bug in the dialogue")
        if inbound.msg_id in self.replays:
            raise Replay(inbound.msg_id)
        (self.pushed if push_reply else self.handled).append(inbound.msg_id)
        return f"答：{inbound.text}"


@pytest.fixture
def handler(tmp_path):
    """A SpoolingHandler over a FlakyService and a spool in tmp_path."""
    return SpoolingHandler(FlakyService(), Spool(tmp_path / "spool"), lambda: RECEIVED)


def test_while_the_store_is_down_messages_are_kept_and_acknowledged(handler):
    """Each message gets the "received" reply and a file, 0600, in a 0700 folder."""
    handler.service.down = True
    assert [handler(message(n)) for n in range(3)] == [RECEIVED] * 3
    files = handler.spool.pending()
    assert len(files) == 3
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {"0o600"}
    assert oct(handler.spool.folder.stat().st_mode & 0o777) == "0o700"


def test_a_retry_of_a_spooled_message_is_kept_once(handler):
    """WeChat's retry of a spooled message finds it there: one file, the same answer."""
    handler.service.down = True
    assert handler(message(1)) == handler(message(1)) == RECEIVED
    assert len(handler.spool.pending()) == 1


def test_drain_processes_in_arrival_order_with_pushed_replies(handler):
    """Once the store is back, spooled messages go through in order, replies as pushes."""
    handler.service.down = True
    for n in (1, 2, 3):
        handler(message(n, user=f"o{n % 2}"))
    handler.service.down = False
    assert handler.drain_once() == 3
    assert handler.service.pushed == ["m1", "m2", "m3"] and handler.spool.pending() == []


def test_a_customers_new_message_waits_behind_their_spooled_ones(handler):
    """Store back but the spool not drained yet: the same customer's next message is spooled too
    (it must not overtake), another customer's is answered at once."""
    handler.service.down = True
    handler(message(1, user="oA"))
    handler.service.down = False
    assert handler(message(2, user="oA")) == RECEIVED
    assert handler(message(3, user="oB")) == "答：你好3"
    handler.drain_once()
    assert handler.service.pushed == ["m1", "m2"]


def test_drain_stops_while_the_store_is_still_down(handler):
    """A round that meets the outage again leaves every message where it is."""
    handler.service.down = True
    handler(message(1))
    assert handler.drain_once() == 0 and len(handler.spool.pending()) == 1


def test_a_message_that_breaks_the_service_is_set_aside_not_retried_forever(handler):
    """A bug (not an outage) moves the message to failed/ and the rest go through."""
    handler.service.down = True
    handler(message(1))
    handler(message(2))
    handler.service.down, handler.service.broken = False, {"m1"}
    assert handler.drain_once() == 1
    assert [p.name for p in handler.spool.failed.iterdir()] and handler.service.pushed == ["m2"]


def test_when_nothing_can_be_kept_the_handler_raises(handler):
    """A spool that cannot be written (full or read-only disk) raises, so WeChat gets a 503."""
    if os.geteuid() == 0:
        handler.spool.keep = lambda inbound: (_ for _ in ()).throw(OSError(28, "No space left on device"))
    else:
        handler.spool.folder.chmod(0o500)
    handler.service.down = True
    with pytest.raises(OSError):
        handler(message(1))


def test_without_a_spool_store_errors_go_up(tmp_path):
    """An in-memory store has nowhere durable to spool: the error reaches the callback (503)."""
    plain = SpoolingHandler(FlakyService(down=True), None, lambda: RECEIVED)
    with pytest.raises(OperationalError):
        plain(message(1))


def test_a_spooled_message_comes_back_whole(handler):
    """Every field of the Inbound survives the file (events and images too)."""
    inbound = replace(message(1), kind="image", media_id="media-1", pic_url="http://x.invalid/p", channel="wecom",
                      stamp=Stamp("wecom:1700000000:42", 1700000300))
    handler.service.down = True
    handler(inbound)
    assert handler.spool.load(handler.spool.pending()[0]) == inbound


def test_a_late_message_queues_its_reply_as_a_customer_message_once(tmp_path):
    """The real service with push_reply: the reply becomes a customer outbox row in the same
    transaction, on the message's channel; a second drain or a late retry of the same message
    gets nothing more (the customer is told once)."""
    from bot.app import build_parts
    from bot.config import StorageConfig, load_config
    import time

    config = replace(load_config(None), storage=StorageConfig(url=f"sqlite:///{tmp_path}/bot.db"))
    parts = build_parts(config)
    inbound = replace(message(1, text="数电配置里没有乐企联用通道"), channel="wecom")
    assert parts.service.handle(inbound, push_reply=True) is None
    assert parts.service.handle(inbound, push_reply=True) is None
    assert parts.service.handle(inbound) is None  # WeChat's late retry: "success", not the reply again
    rows = parts.store.outbox.claim(time.time() + 1, 10, "customer")
    assert [(r.user, r.payload["channel"]) for r in rows] == [("oA", "wecom")]
    assert "税号" in rows[0].payload["text"]


def test_a_replay_kept_during_the_outage_is_dropped_when_drained(handler):
    """A forged message under another message's stamp could only be spooled (the store was down to
    check it): the drain's turn refuses it and it is dropped; the real one goes through."""
    handler.service.down = True
    handler(message(1))
    handler(message(2))
    handler.service.down, handler.service.replays = False, {"m2"}
    assert handler.drain_once() == 1
    assert handler.service.pushed == ["m1"] and handler.spool.pending() == []
