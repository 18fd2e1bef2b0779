"""Authors see their edit without a restart: the server runs a checked copy of `answers/`.

The gunicorn master checks the answers folder (`python -m bot check`) before any worker loads
it and hands workers a snapshot copy, so a worker (re)started later never meets a half-edited or
broken file. On SIGHUP — gunicorn's graceful reload — or when a watched file changes, the master
checks again: passing answers become the new snapshot and workers are replaced one by one;
failing ones are logged (file:line) and the old snapshot stays.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

WATCH_SECONDS = 2.0  # how often the master looks at the answers folder's files


def fingerprint(folder: Path) -> tuple:
    """What changes when an author edits, adds or removes an answer or text file."""
    try:
        files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
        return tuple((str(p.relative_to(folder)), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
    except OSError:  # mid-rename: the next look sees the result
        return ()


def checked_copy(folder: Path, under: Path) -> tuple[Path | None, list[str]]:
    """(a new snapshot directory of `folder`, []) when it passes `check`, else (None, problems)."""
    from bot.check import check_answers

    problems = check_answers(folder)
    if problems:
        return None, problems
    snapshot = Path(tempfile.mkdtemp(prefix="answers-", dir=under)) / "answers"
    shutil.copytree(folder, snapshot)
    if check_answers(snapshot):  # changed while we copied: try again on the next look
        shutil.rmtree(snapshot.parent, ignore_errors=True)
        return None, [f"{folder}: changed while being copied; will check again"]
    return snapshot, []


class Snapshots:
    """The checked copies of one answers folder; the newest is what workers load."""

    def __init__(self, folder: Path):
        """Snapshots live in a private temporary directory."""
        self.folder = Path(folder)
        self.root = Path(tempfile.mkdtemp(prefix="bot-answers-"))
        self.current: Path | None = None
        self.seen = fingerprint(self.folder)

    def refresh(self) -> bool:
        """Check the folder; True when a new snapshot replaced the current one."""
        self.seen = fingerprint(self.folder)
        snapshot, problems = checked_copy(self.folder, self.root)
        if snapshot is None:
            where = "keeping the answers already loaded" if self.current else "cannot start"
            log.error("answers: check failed, %s:\n  %s", where, "\n  ".join(problems))
            return False
        old, self.current = self.current, snapshot
        if old is not None:
            shutil.rmtree(old.parent, ignore_errors=True)  # workers hold their answers in memory
        log.info("answers: %s checked and loaded", self.folder)
        return True

    def changed(self) -> bool:
        """True when the folder's files differ from what was last checked."""
        return fingerprint(self.folder) != self.seen

    def close(self) -> None:
        """Remove every snapshot."""
        shutil.rmtree(self.root, ignore_errors=True)


def watch(snapshots: Snapshots, stop: threading.Event, on_change: Callable[[], None] | None = None,
          every: float = WATCH_SECONDS) -> threading.Thread:
    """A daemon thread that, when the folder changes and passes check, calls `on_change` (by
    default: SIGHUP to this process, gunicorn's graceful reload)."""
    def reload_self() -> None:
        """Ask gunicorn's master (this process) to replace its workers."""
        os.kill(os.getpid(), signal.SIGHUP)

    def loop() -> None:
        """Look every `every` seconds until stopped; a failing check is logged once per edit."""
        from bot.check import check_answers

        while not stop.wait(every):
            if not snapshots.changed():
                continue
            snapshots.seen = fingerprint(snapshots.folder)
            problems = check_answers(snapshots.folder)
            if problems:
                log.error("answers: changed but check failed, keeping the answers already loaded:\n  %s",
                          "\n  ".join(problems))
                continue
            (on_change or reload_self)()

    thread = threading.Thread(target=loop, name="answers-watch", daemon=True)
    thread.start()
    return thread
