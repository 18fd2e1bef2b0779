"""SQLite WAL checkpoints off the request path: one background thread per database file and process.

A WAL commit appends pages; a checkpoint copies them back into the database file and syncs it.
SQLite runs one inside whichever commit pushes the WAL past its limit, so that message pays for
copying and syncing ~90 messages' pages (hotpath_bench: +0.06 ms per message on average, and the
latency spike lands on one customer). Here a thread runs a PASSIVE checkpoint (it never blocks
readers or writers) every CHECKPOINT_SECONDS while writes come in, and ends after IDLE_SECONDS
without one; the next write starts it again. Connections keep checkpointing themselves past
BACKSTOP_PAGES, so the WAL stays bounded even if the thread is late or gone.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time

log = logging.getLogger(__name__)

CHECKPOINT_SECONDS = 1.0  # a passive checkpoint this often while messages are written
IDLE_SECONDS = 10.0  # the thread ends after this long without a write
BACKSTOP_PAGES = 10_000  # wal_autocheckpoint of the store's own connections (40 MB of 4 KiB pages)


class Checkpointer:
    """Passive WAL checkpoints of one SQLite file in a background thread while it is written."""

    def __init__(self, path: str):
        """The database file; the thread starts with the first write of each process."""
        self.path = path
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._last_write = 0.0
        self._stop = threading.Event()

    def wrote(self) -> None:
        """A write transaction committed: make sure the thread runs."""
        self._last_write = time.monotonic()
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._pid != os.getpid() or self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._pid = os.getpid()  # a forked child starts its own thread
                self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        """Checkpoint every CHECKPOINT_SECONDS until idle or closed."""
        try:
            conn = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            log.warning("store: WAL checkpoints stay with the writers (%s)", exc)
            return
        try:
            while not self._stop.wait(CHECKPOINT_SECONDS):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                if time.monotonic() - self._last_write > IDLE_SECONDS:
                    break
        except sqlite3.Error as exc:  # e.g. the file went away; writers checkpoint past the backstop
            log.warning("store: WAL checkpoint thread stopped: %s", exc)
        finally:
            conn.close()

    def close(self) -> None:
        """Stop the thread (the last connection's close checkpoints what is left)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout=CHECKPOINT_SECONDS * 2)
