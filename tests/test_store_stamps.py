"""The replay defence in the store: a delivery's timestamp+nonce is good for one message, checked and
recorded in that message's own turn, on every backend."""
from __future__ import annotations

import pytest

from bot.model import Replay, Stamp
from tests.store_cases import T0, all_backends, take_turn

UNTIL = T0 + 300  # the stamp's timestamp + the channel's tolerance


def deliver(store, stamp: str, key: str, offset: float) -> str:
    """One delivery of message `key` under `stamp`: "ok" (new or answered before) or "replay"."""
    try:
        status, _reply = take_turn(store, key, now=T0 + offset, stamp=Stamp(stamp, UNTIL), reply=key)
    except Replay:
        return "replay"
    return "ok" if status in ("new", "done") else status


@all_backends()
@pytest.mark.parametrize("steps", [
    [("s1", "m1", 0, "ok")],
    [("s1", "m1", 0, "ok"), ("s1", "m1", 1, "ok")],  # a retry of the same message under its stamp
    [("s1", "m1", 0, "ok"), ("s1", "m2", 1, "replay")],  # another message under a used stamp
    [("s1", "m1", 0, "ok"), ("s2", "m2", 1, "ok")],  # another stamp is independent
    [("s1", "m1", 0, "ok"), ("s1", "m2", 400, "ok")],  # past its expiry the stamp is free again
    [("s1", "m1", 0, "ok"), ("s2", "m1", 1, "ok"), ("s2", "m3", 2, "replay")],  # a retry's own stamp counts
], ids=["new", "same-message", "other-message", "other-stamp", "expired", "retry-stamp"])
def test_a_stamp_is_good_for_one_message(store, steps):
    """Each stamp stays with the message it was first used for, until it expires."""
    assert [deliver(store, stamp, key, offset) for stamp, key, offset, _ in steps] == [s[-1] for s in steps]


@all_backends()
def test_a_replay_changes_nothing(store):
    """A forged message under a captured stamp is refused before its work runs: no reply is stored."""
    take_turn(store, "m1", stamp=Stamp("s1", UNTIL), reply="first")
    with pytest.raises(Replay):
        take_turn(store, "m2", now=T0 + 1, stamp=Stamp("s1", UNTIL), work=lambda tx: pytest.fail("ran"))
    assert take_turn(store, "m2", now=T0 + 2, stamp=Stamp("s2", UNTIL), reply="real") == ("new", "real")


@all_backends(["sqlite", "memory", "postgres"])
def test_purge_drops_only_expired_stamps(store):
    """Purging after the old stamp's expiry frees it and keeps the live one."""
    take_turn(store, "m1", stamp=Stamp("old", T0 + 10), reply="a")
    take_turn(store, "m2", stamp=Stamp("live", T0 + 1000), reply="b")
    assert store.turns.purge(T0 - 1, T0 + 20) == 1
    assert deliver(store, "live", "m3", 30) == "replay"
    take_turn(store, "m4", now=T0 + 5, stamp=Stamp("old", T0 + 1000), reply="c")
