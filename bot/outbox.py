"""Outbox worker: delivers ops notifications (WeCom robot) and customer messages (WeChat, WeCom app).

Rows are claimed atomically from the store one at a time, right before they are sent, so any
number of workers may run and a killed worker strands at most the one row it was sending: a row
left `sending` longer than the lease (two client timeouts and a margin) is requeued by any worker.
A failed row goes back to pending with exponential backoff; a closed customer window holds the row
for the customer's next passive reply. A call that timed out waiting for the answer is "maybe
delivered": it is tried once more after MAYBE_BACKOFF and then counted sent (last_error says
so), and it never stops the rows behind it — a slow robot gets each message at most twice.
Customer rows go out on the channel the customer wrote from (payload "channel": wechat | wecom).
Logs name row ids and error codes, never payloads (ops markdown carries tax IDs).
"""
from __future__ import annotations

import logging
import re
import threading
import time
from typing import TYPE_CHECKING, Callable

import requests

from bot.store.base import OPS_PER_MINUTE

if TYPE_CHECKING:
    from bot.channels.robot import RobotClient
    from bot.channels.wechat_api import CustomerService
    from bot.channels.wecom_api import WeComPush
    from bot.store.base import OutboxRow, Store

log = logging.getLogger(__name__)

BASE_BACKOFF = 5.0
MAX_BACKOFF = 600.0
DEFAULT_LEASE = 12.0  # a row `sending` this long belongs to a dead worker: 2 × the 5 s timeout + 2 s
MAYBE_BACKOFF = 60.0  # seconds before the one retry of a maybe-delivered row
MAYBE_LIMIT = 2  # a remote that never answers in time gets a message at most this many times
MAYBE = re.compile(r"^maybe delivered x(\d+)")
BATCH = 10
GIVE_UP_AFTER = 144  # non-retryable failures (10 min apart: a day to fix the config) before a row is dead
PURGE_EVERY = 3600.0  # seconds between clean-ups of processed-message keys
KEEP_MESSAGES = 2 * 24 * 3600.0  # WeChat retries within seconds; keep keys two days


class DeliveryError(Exception):
    """A message could not be delivered; `retryable`, `hold` and `maybe` tell the outbox what to do.

    `maybe`: the request went out but no answer came back in time (a read timeout), so the
    remote may have taken it: the outbox retries such a row once, later, and never twice more.
    """

    def __init__(self, retryable: bool, code: int | None, message: str, hold: bool = False,
                 maybe: bool = False):
        """Keep the outcome flags, the remote error code (None for transport errors) and a text."""
        super().__init__(f"{code}: {message}" if code is not None else message)
        self.retryable = retryable
        self.code = code
        self.message = message
        self.hold = hold
        self.maybe = maybe


def transport_error(exc: requests.RequestException, what: str) -> DeliveryError:
    """A failed HTTP call: "maybe delivered" when it was sent but unanswered, else not delivered."""
    if isinstance(exc, requests.ReadTimeout):
        return DeliveryError(True, None, f"{what} did not answer in time (ReadTimeout): maybe delivered",
                             maybe=True)
    return DeliveryError(True, None, f"{what} unreachable: {type(exc).__name__}")


def backoff(attempts: int) -> float:
    """Delay before the next try after `attempts` failed ones: 5 s · 2^attempts, at most 10 min."""
    return min(MAX_BACKOFF, BASE_BACKOFF * 2 ** min(attempts, 16))


def _text(payload: dict, key: str) -> str:
    """payload[key] when it is a non-empty string; KeyError/TypeError/ValueError otherwise."""
    value = payload[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} is {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{key} is empty")
    return value


class OutboxWorker:
    """Claims due outbox rows and delivers them.

    Without a robot, ops rows stay queued; without a push client for a customer's channel
    (`customer` for wechat, `wecom` for wecom), their rows are held for their next passive reply.
    """

    def __init__(self, store: Store, robot: RobotClient | None, customer: CustomerService | None,
                 clock: Callable[[], float] = time.time, *, wecom: WeComPush | None = None,
                 batch: int = BATCH, ops_per_minute: int = OPS_PER_MINUTE,
                 give_up_after: int = GIVE_UP_AFTER, lease: float = DEFAULT_LEASE,
                 on_hold: Callable[[OutboxRow, DeliveryError], None] | None = None):
        """Deliver ops rows with `robot`, WeChat customer rows with `customer`, WeCom ones with `wecom`;
        `on_hold(row, error)` hears of each customer row the API refused (it waits for their next message)."""
        self.outbox, self.turns = store.outbox, store.turns
        self.on_hold = on_hold
        self.robot = robot
        self.customer = customer
        self.wecom = wecom
        self.clock = clock
        self.batch = batch
        self.ops_per_minute = ops_per_minute
        self.give_up_after = give_up_after
        self.lease = lease
        self._purged_at = float("-inf")

    def run_once(self) -> int:
        """Requeue stale rows, then claim and deliver up to `batch` rows one by one; how many."""
        now = self.clock()
        self._purge(now)
        stale = self.outbox.requeue_stale(now - self.lease)
        if stale:
            log.warning("outbox: requeued %d row(s) left sending by a stopped worker", stale)
        down: set[str] = set()
        claimed = 0
        while claimed < self.batch:
            rows = self._claim(self.clock())
            if not rows:
                break
            claimed += 1
            if _lane(rows[0]) in down:
                self._retry(rows[0], "deferred: target unavailable", True)
            else:
                self._deliver(rows[0], down)
        return claimed

    def _purge(self, now: float) -> None:
        """Now and then, drop processed-message keys older than KEEP_MESSAGES."""
        if now - self._purged_at < PURGE_EVERY:
            return
        self._purged_at = now
        removed = self.turns.purge(now - KEEP_MESSAGES, now)
        if removed:
            log.info("outbox: purged %d processed-message key(s) and expired replay stamp(s)", removed)

    def _claim(self, now: float) -> list[OutboxRow]:
        """Claim one due row: customer rows, and ops rows only when there is a robot to send them."""
        target = None if self.robot else "customer"
        return self.outbox.claim(now, 1, target, ops_per_minute=self.ops_per_minute)

    def _deliver(self, row: OutboxRow, down: set[str]) -> None:
        """Send one row and record the outcome; a broken row never stops the batch."""
        try:
            self._send(row)
        except DeliveryError as exc:
            self._failed(row, exc, down)
        except (KeyError, TypeError, ValueError) as exc:
            log.error("outbox: row %d has an unusable payload (%s); retrying later",
                      row.id, type(exc).__name__)
            self._retry(row, f"bad payload: {type(exc).__name__}", False)
        else:
            self.outbox.sent(row.id, self.clock())
            log.info("outbox: row %d delivered to %s (ticket %s)", row.id, row.target, row.ticket_id)

    def _send(self, row: OutboxRow) -> None:
        """Hand the payload to the right client."""
        if row.target == "ops":
            self.robot.send_markdown(_text(row.payload, "markdown"))
        elif row.target == "customer":
            self._push(row)
        else:
            raise ValueError(f"unknown target {row.target!r}")

    def _push(self, row: OutboxRow) -> None:
        """Send a customer row with the client of its channel; hold it when there is none."""
        channel = row.payload.get("channel", "wechat")
        client = {"wechat": self.customer, "wecom": self.wecom}.get(channel)
        if client is None:
            raise DeliveryError(False, None, f"no push API for channel {channel!r}", hold=True)
        client.send_text(row.user, _text(row.payload, "text"))

    def _held(self, row: OutboxRow, exc: DeliveryError) -> None:
        """Tell `on_hold` (ops hear that a ticket's message waits); its failure never stops delivery."""
        if self.on_hold is None:
            return
        try:
            self.on_hold(row, exc)
        except Exception:  # noqa: BLE001 - a notice about a held row must not break the batch
            log.exception("outbox: on_hold failed for row %d", row.id)

    def _failed(self, row: OutboxRow, exc: DeliveryError, down: set[str]) -> None:
        """Hold, or retry with backoff; a retryable failure marks the row's lane down this round."""
        if exc.hold and row.target == "customer":
            self.outbox.hold(row.id, str(exc)[:500])
            log.info("outbox: row %d held for the customer's next message (%s)", row.id, exc.code)
            self._held(row, exc)
            return
        if exc.maybe:
            self._maybe_delivered(row, exc)
            return
        if exc.retryable:  # outage, rate limit, busy: the next rows would fail the same way
            down.add(_lane(row))
        level = logging.WARNING if exc.retryable else logging.ERROR
        log.log(level, "outbox: row %d to %s failed (attempt %d): %s", row.id, row.target,
                row.attempts + 1, exc)
        self._retry(row, str(exc)[:500], exc.retryable)

    def _maybe_delivered(self, row: OutboxRow, exc: DeliveryError) -> None:
        """Sent but unanswered: retry once after MAYBE_BACKOFF; after MAYBE_LIMIT, count it sent."""
        times = maybe_count(row.last_error) + 1
        note = f"maybe delivered x{times}: {exc}"[:500]
        if times >= MAYBE_LIMIT:
            log.warning("outbox: row %d to %s unanswered %d times; counted sent (maybe delivered)",
                        row.id, row.target, times)
            self.outbox.sent(row.id, self.clock(), note)
            return
        log.warning("outbox: row %d to %s unanswered (maybe delivered); one retry in %.0f s",
                    row.id, row.target, MAYBE_BACKOFF)
        self.outbox.retry(row.id, self.clock() + MAYBE_BACKOFF, note)

    def _retry(self, row: OutboxRow, error: str, retryable: bool) -> None:
        """Back to pending; a non-retryable error waits the longest (an operator may fix config)."""
        if not retryable and row.attempts + 1 >= self.give_up_after:
            log.error("outbox: row %d to %s given up after %d attempts", row.id, row.target, row.attempts + 1)
            self.outbox.dead(row.id, error)
            return
        delay = backoff(row.attempts) if retryable else MAX_BACKOFF
        self.outbox.retry(row.id, self.clock() + delay, carry_maybe(row.last_error, error))

    def run_forever(self, stop_event: threading.Event, interval: float = 1.0) -> None:
        """Deliver until `stop_event` is set; store errors are logged and retried next round."""
        log.info("outbox: worker started (ops=%s, wechat=%s, wecom=%s)", self.robot is not None,
                 self.customer is not None, self.wecom is not None)
        while not stop_event.is_set():
            try:
                claimed = self.run_once()
            except Exception:  # noqa: BLE001 - the delivery thread must survive a store outage
                log.exception("outbox: delivery round failed")
                claimed = 0
            stop_event.wait(0 if claimed >= self.batch else interval)
        log.info("outbox: worker stopped")


def maybe_count(error: str) -> int:
    """How many times a row was maybe delivered, from its last_error ("maybe delivered xN: …")."""
    found = MAYBE.match(error or "")
    return int(found[1]) if found else 0


def carry_maybe(previous: str, error: str) -> str:
    """A new error text that keeps the row's maybe-delivered count (so the limit holds)."""
    times = maybe_count(previous)
    return f"maybe delivered x{times}: then {error}"[:500] if times else error


def _lane(row: OutboxRow) -> str:
    """What a row travels through: "ops", or "customer:<channel>" (one API down stops only its rows)."""
    if row.target != "customer" or not isinstance(row.payload, dict):
        return row.target
    return f"customer:{row.payload.get('channel', 'wechat')}"


def start_outbox_thread(worker: OutboxWorker, interval: float = 1.0) -> tuple[threading.Thread, threading.Event]:
    """Run `worker.run_forever` in a daemon thread; set the returned event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop, interval),
                              name="outbox", daemon=True)
    thread.start()
    return thread, stop
