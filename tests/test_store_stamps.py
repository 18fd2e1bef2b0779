"""The replay cache contract (bot.store.stamps) on every backend."""
from __future__ import annotations

import pytest

from tests.store_cases import T0, all_backends


@all_backends()
@pytest.mark.parametrize("steps", [
    [("s1", "m1", 0, "m1")],
    [("s1", "m1", 0, "m1"), ("s1", "m1", 1, "m1")],  # a retry of the same message under its stamp
    [("s1", "m1", 0, "m1"), ("s1", "m2", 1, "m1")],  # another message under a used stamp: a replay
    [("s1", "m1", 0, "m1"), ("s2", "m2", 1, "m2")],  # another stamp is independent
    [("s1", "m1", 0, "m1"), ("s1", "m2", 400, "m2")],  # past its expiry the stamp is free again
], ids=["new", "same-message", "other-message", "other-stamp", "expired"])
def test_remember_stamp_keeps_the_first_message(store, steps):
    """Each stamp answers with the digest it was first used for, until it expires (T0 + 300)."""
    for stamp, digest, offset, expected in steps:
        assert store.stamps.remember_stamp(stamp, digest, T0 + 300, T0 + offset) == expected


@all_backends(["sqlite", "memory", "postgres"])
def test_purge_stamps_drops_only_expired_entries(store):
    """Purging after the old stamp's expiry removes it and keeps the live one."""
    store.stamps.remember_stamp("old", "m1", T0 + 10, T0)
    store.stamps.remember_stamp("live", "m2", T0 + 1000, T0)
    assert store.stamps.purge_stamps(T0 + 20) == 1
    assert store.stamps.remember_stamp("live", "m3", T0 + 1000, T0 + 30) == "m2"
    assert store.stamps.remember_stamp("old", "m4", T0 + 1000, T0 + 30) == "m4"
