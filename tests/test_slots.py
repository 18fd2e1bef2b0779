"""A worker's message slots (bot.slots): at most N messages at work at once; a waiting retry lets go."""
from __future__ import annotations

import threading
import time

import pytest

from bot.slots import MessageSlots, message_slots

WORKERS = 6  # threads competing for the slots in one test
HOLD = 0.05  # seconds a thread keeps its slot


def busiest(slots: MessageSlots, threads: int) -> int:
    """The most threads seen inside `slots` at the same moment."""
    inside, most, guard = [0], [0], threading.Lock()

    def work() -> None:
        """Enter, stay HOLD seconds, leave."""
        with slots:
            with guard:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(HOLD)
            with guard:
                inside[0] -= 1
    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=10)
    return most[0]


@pytest.mark.parametrize("count", [1, 2, 3])
def test_no_more_messages_at_work_than_slots(count):
    assert busiest(MessageSlots(count), WORKERS) == count


def test_a_sleeping_holder_lets_another_message_in():
    slots, entered = MessageSlots(1), threading.Event()

    def other() -> None:
        """A second message: gets in only if the sleeper gave its slot up."""
        with slots:
            entered.set()
    with slots:
        thread = threading.Thread(target=other)
        thread.start()
        slots.sleep(0.3)
        assert entered.is_set()
    thread.join(timeout=5)


def test_the_holder_has_its_slot_again_after_sleeping():
    slots = MessageSlots(1)
    with slots:
        slots.sleep(0.01)
        assert not slots._free.acquire(blocking=False)  # still held by this thread


@pytest.mark.parametrize("count", [1, 2])
def test_sleeping_without_a_slot_leaves_the_count_alone(count):
    slots = MessageSlots(count)
    slots.sleep(0.01)  # e.g. the spool's drain thread waiting for a reply
    assert busiest(slots, WORKERS) == count


@pytest.mark.parametrize("count, limited", [(0, False), (1, True), (4, True)])
def test_zero_means_no_limit(count, limited):
    assert (message_slots(count) is not None) is limited
