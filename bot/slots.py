"""How many messages a worker works on at once: its threads read bodies and write replies freely,
but only `count` of them run a message's work (protocol, understanding, store) at a time.

Under gunicorn's gthread workers, sixteen threads working on messages at once fight over the GIL
and SQLite's writer lock: a thread holding the lock waits for the GIL while the others spin
through their matching, so a message costs more CPU and waits longer (bench/README.md, "Worker
model": one at a time is the fastest on SQLite and on PostgreSQL+Redis). A message that waits for
another attempt's reply (`BotService._wait_for_reply`) gives its slot up while it sleeps.
"""
from __future__ import annotations

import threading
import time


class MessageSlots:
    """A bounded number of messages at work in this process (a context manager per message)."""

    def __init__(self, count: int):
        """`count` ≥ 1 messages at once (a plain lock for one, or a first-come-first-served queue,
        measured no different: bench/README.md, "Third round")."""
        self._free = threading.BoundedSemaphore(count)
        self._mine = threading.local()

    def __enter__(self) -> "MessageSlots":
        """Wait for a free slot."""
        self._free.acquire()
        self._mine.held = True
        return self

    def __exit__(self, *exc) -> None:
        """Give the slot back."""
        self._mine.held = False
        self._free.release()

    def sleep(self, seconds: float) -> None:
        """Sleep, without the slot if this thread holds one (others work meanwhile)."""
        if not getattr(self._mine, "held", False):
            time.sleep(seconds)
            return
        self.__exit__()
        try:
            time.sleep(seconds)
        finally:
            self.__enter__()


def message_slots(count: int) -> MessageSlots | None:
    """The worker's slots for `[server] messages_at_once` (0: no limit, None)."""
    return MessageSlots(count) if count > 0 else None
