"""A read deadline on request bodies: a client that stalls (or drips) mid-body loses its connection.

gunicorn's gthread worker waits for a request's first bytes off the thread pool, but once a
thread reads the body it blocks for as long as the client takes. One watchdog thread per process
keeps the deadlines of the bodies being read; when one passes it shuts the socket's read side,
so the blocked read returns at once and the thread answers 408 and moves on. The socket also
gets a timeout, so no single read outlives the deadline even if the watchdog were late.
"""
from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time

BODY_DEADLINE = 2.0  # seconds to send a whole body; WeChat's few KiB arrive in milliseconds


class Watchdog:
    """Shuts the read side of sockets whose deadline passed."""

    def __init__(self, clock=time.monotonic):
        """An idle watchdog; its thread starts with the first deadline."""
        self.clock = clock
        self._heap: list[tuple[float, int, socket.socket]] = []
        self._live: set[int] = set()
        self._expired: set[int] = set()
        self._ids = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, sock: socket.socket, seconds: float) -> int:
        """Start a deadline for `sock`; returns its ticket for `done`."""
        ticket = next(self._ids)
        with self._cond:
            heapq.heappush(self._heap, (self.clock() + seconds, ticket, sock))
            self._live.add(ticket)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="body-deadline", daemon=True)
                self._thread.start()
            if self._heap[0][1] == ticket:  # the earliest deadline now: wake the watchdog to wait for it
                self._cond.notify()  # (else it already sleeps until an earlier one, then looks again)
        return ticket

    def done(self, ticket: int) -> bool:
        """End a deadline; True when it had already expired (the socket's read side is shut)."""
        with self._cond:
            self._live.discard(ticket)
            if ticket in self._expired:
                self._expired.discard(ticket)
                return True
            return False

    def _run(self) -> None:
        """Sleep until the next deadline; shut what expired."""
        with self._cond:
            while True:
                while self._heap and self._heap[0][1] not in self._live:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                due, ticket, sock = self._heap[0]
                wait = due - self.clock()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                self._live.discard(ticket)
                self._expired.add(ticket)
                _shut_read(sock)


def _shut_read(sock: socket.socket) -> None:
    """End reads on `sock` (a blocked recv returns b""); the reply can still be written."""
    try:
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass


WATCHDOG = Watchdog()


def read_with_deadline(read, sock: socket.socket | None, seconds: float = BODY_DEADLINE):
    """`read()` with a deadline on `sock` (None: no socket known, e.g. a test client): (body, late).

    `late` is True when the deadline cut the read short; the body is then incomplete.
    """
    if sock is None:
        return read(), False
    previous = sock.gettimeout()
    ticket = WATCHDOG.watch(sock, seconds)
    try:
        sock.settimeout(seconds)
        body = read()
    except TimeoutError:
        WATCHDOG.done(ticket)
        return b"", True
    except Exception:  # e.g. werkzeug's ClientDisconnected once the watchdog shut the read side
        if WATCHDOG.done(ticket):
            return b"", True
        raise
    finally:
        _restore(sock, previous)
    return body, WATCHDOG.done(ticket)


def _restore(sock: socket.socket, timeout: float | None) -> None:
    """Put the socket's own timeout back (gthread keeps the connection for keep-alive)."""
    try:
        sock.settimeout(timeout)
    except OSError:
        pass
