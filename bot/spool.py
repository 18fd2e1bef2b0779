"""The local write-ahead spool: messages the store could not take, kept on local disk until it can.

When handling a message fails because the store is down (PostgreSQL stopped, Redis and SQL both
unreachable, SQLite's disk full), `SpoolingHandler` writes the message to the spool folder — one
file per message, written, fsynced and renamed into place, then the folder fsynced — and only then
answers WeChat (with a short "received, the reply follows" text). If even that fails, the handler
raises and the callback answers 503 so WeChat retries: nothing is answered that was not kept.

`drain` (every worker runs it in the background, one at a time under a lock file) hands spooled
messages to the service in arrival order once the store writes again, each processed exactly as
if it had just arrived, its reply queued as a customer-service message in the same transaction.
The store's dedupe makes a spooled message and WeChat's retry of it one message (one ticket). While
a customer has messages in the spool, their new ones queue behind them, so a flow keeps its order.
"""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable

import redis
from sqlalchemy.exc import SQLAlchemyError

from bot.model import Inbound, Replay, Stamp

log = logging.getLogger(__name__)

STORE_ERRORS = (SQLAlchemyError, redis.RedisError, OSError)  # the store is down, not the message bad
DRAIN_INTERVAL = 1.0  # seconds between looks at the spool
SUFFIX = ".msg"


def _digest(text: str) -> str:
    """A short stable name part for a user or a message key (never the openid itself)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class Spool:
    """A folder of spooled messages, oldest first by name: <arrival ns>-<user digest>-<key digest>.msg."""

    def __init__(self, folder: str | os.PathLike):
        """Use (and create, 0700) `folder`."""
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.failed = self.folder / "failed"

    def keep(self, inbound: Inbound) -> bool:
        """Write `inbound` durably; False when it was already spooled (a WeChat retry)."""
        user, key = _digest(inbound.user), _digest(f"{inbound.channel}:{inbound.msg_id}")
        if self._holds(f"-{user}-{key}{SUFFIX}"):
            return False
        name = f"{time.time_ns():020d}-{user}-{key}{SUFFIX}"
        data = json.dumps(dataclasses.asdict(inbound), ensure_ascii=False).encode("utf-8")
        temp = self.folder / f".{name}.{os.getpid()}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, self.folder / name)
        self._sync_folder()
        return True

    def _sync_folder(self) -> None:
        """fsync the folder so a rename or unlink survives a power cut."""
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def pending(self) -> list[Path]:
        """Spooled messages, oldest first."""
        return sorted(p for p in self.folder.iterdir() if p.suffix == SUFFIX)

    def holds_user(self, user: str) -> bool:
        """Whether messages of `user` wait in the spool (theirs must not overtake them)."""
        return self._holds(f"-{_digest(user)}-")

    def _holds(self, part: str) -> bool:
        """Whether a spooled message's name contains `part`: one directory read (every message asks,
        and the spool is almost always empty — a glob compiled a pattern per user, ~0.1 ms)."""
        with os.scandir(self.folder) as entries:
            return any(part in e.name and e.name.endswith(SUFFIX) and not e.name.startswith(".") for e in entries)

    def load(self, path: Path) -> Inbound:
        """The Inbound kept in `path` (its stamp too: the drain still refuses a replay)."""
        fields = json.loads(path.read_text(encoding="utf-8"))
        stamp = fields.pop("stamp", None)
        return Inbound(**fields, stamp=Stamp(**stamp) if stamp else None)

    def done(self, path: Path) -> None:
        """Forget a processed message."""
        path.unlink(missing_ok=True)
        self._sync_folder()

    def set_aside(self, path: Path) -> None:
        """Move a message the service cannot process (not a store outage) to failed/ for a person."""
        self.failed.mkdir(exist_ok=True, mode=0o700)
        os.replace(path, self.failed / path.name)
        self._sync_folder()

    def drain(self, handle: Callable[[Inbound], object]) -> int:
        """Process spooled messages in order while the store takes them; how many went through.

        Only one process drains at a time (a lock file); a store error stops the round.
        """
        with open(self.folder / ".drain.lock", "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0
            return self._drain_locked(handle)

    def _drain_locked(self, handle: Callable[[Inbound], object]) -> int:
        """`drain` with the lock held."""
        count = 0
        for path in self.pending():
            try:
                inbound = self.load(path)
            except (ValueError, TypeError, OSError):
                log.error("spool: unreadable %s set aside", path.name)
                self.set_aside(path)
                continue
            try:
                handle(inbound)
            except STORE_ERRORS as exc:
                log.warning("spool: store still unavailable (%s); %d message(s) wait",
                            type(exc).__name__, len(self.pending()))
                return count
            except Replay:  # kept during the outage, refused now: its stamp was another message's
                log.warning("spool: %s is a replay (timestamp+nonce of another message); dropped", path.name)
                self.done(path)
                continue
            except Exception:  # noqa: BLE001 - a message that breaks the service must not block the rest
                log.exception("spool: message %s failed; set aside in failed/", path.name)
                self.set_aside(path)
                continue
            self.done(path)
            count += 1
        if count:
            log.info("spool: %d message(s) processed after the store came back", count)
        return count


class SpoolingHandler:
    """The webhook's handler: the service, with the spool behind it when the store cannot write."""

    def __init__(self, service, spool: Spool | None, received_text: Callable[[], str]):
        """`received_text()`: the passive reply that says the message was kept (from answers/texts);
        `spool` None (an in-memory store): store errors go up and the callback answers 503."""
        self.service, self.spool, self.received_text = service, spool, received_text

    def __call__(self, inbound: Inbound) -> str | None:
        """Handle now, or keep it in the spool and say so; raises only when nothing could be kept."""
        if self.spool is None:
            return self.service.handle(inbound)
        if self.spool.holds_user(inbound.user):
            return self._keep(inbound, "earlier messages of this customer are spooled")
        try:
            return self.service.handle(inbound)
        except STORE_ERRORS as exc:
            return self._keep(inbound, f"store unavailable: {type(exc).__name__}")

    def _keep(self, inbound: Inbound, why: str) -> str:
        """Spool the message (fsynced) and answer that it was received."""
        new = self.spool.keep(inbound)
        log.warning("spool: %s message %s %s (%s)", inbound.kind, "kept" if new else "already kept",
                    _digest(inbound.msg_id), why)
        return self.received_text()

    def drain_once(self) -> int:
        """Process what the spool holds (replies pushed as customer-service messages)."""
        return self.spool.drain(lambda inbound: self.service.handle(inbound, push_reply=True))


def start_drain_thread(handler: SpoolingHandler, interval: float = DRAIN_INTERVAL) -> threading.Event:
    """Drain the spool in a daemon thread until the returned event is set."""
    stop = threading.Event()

    def run() -> None:
        """Drain whenever something waits; never die."""
        while not stop.is_set():
            try:
                if handler.spool.pending():
                    handler.drain_once()
            except Exception:  # noqa: BLE001 - the drain thread must outlive any outage
                log.exception("spool: drain round failed")
            stop.wait(interval)

    threading.Thread(target=run, name="spool-drain", daemon=True).start()
    return stop
