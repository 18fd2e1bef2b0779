"""The outbox's remaining at-least-once window: from the robot taking a message to our "sent" commit.

A worker killed inside that window leaves a row `sending` that the robot already has; another
worker requeues it after the lease and the robot gets it a second time. Outside it nothing is
sent twice. This drives the real OutboxWorker and RobotClient against the fake robot on loopback
and prints the window (robot received → row committed sent) per backend, and how long a killed
worker's row waits: the lease. Asserts nothing.

    python bench/outbox_window_bench.py [ROWS]     # default 200; PostgreSQL via BOT_TEST_POSTGRES_URL
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.store_bench import scratch_schema  # noqa: E402
from bot.channels.robot import RobotClient  # noqa: E402
from bot.config import StorageConfig  # noqa: E402
from bot.outbox import DEFAULT_LEASE, OutboxWorker  # noqa: E402
from bot.store import open_store  # noqa: E402
from tests.fake_robot import FakeRobot  # noqa: E402


class TimedRobot(FakeRobot):
    """The fake robot, noting when it accepted each message."""

    def __init__(self):
        """No rate limit: the bench measures the window, not the robot."""
        super().__init__(per_minute=10**9)
        self.accepted: dict[str, float] = {}

    def _accept(self, content: str):
        """Accept, and note the time."""
        self.accepted[content] = time.perf_counter()
        return super()._accept(content)


def measure(name: str, url: str, rows: int) -> None:
    """Queue `rows` ops rows, deliver them, print the window's p50/p99/max."""
    store = open_store(StorageConfig(url=url))
    robot = TimedRobot()
    committed: dict[int, float] = {}
    sent = store.outbox.sent

    def timed_sent(row_id, now, note=None):
        """The real commit, then the time it ended."""
        sent(row_id, now, note)
        committed[row_id] = time.perf_counter()

    store.outbox.sent = timed_sent  # type: ignore[method-assign]  (a frozen dataclass's part)
    ids = {store.outbox.queue({"target": "ops", "user": "", "payload": {"markdown": f"### 工单 {n}"}},
                              None, time.time()): f"### 工单 {n}" for n in range(rows)}
    worker = OutboxWorker(store, RobotClient(robot.webhook_url, timeout=5), None, ops_per_minute=10**9)
    while worker.run_once():
        pass
    windows = sorted((committed[i] - robot.accepted[text]) * 1000 for i, text in ids.items())
    p99 = windows[int(len(windows) * 0.99) - 1]
    print(f"{name:12} rows={rows}  robot received → sent committed: p50={statistics.median(windows):.2f} ms "
          f"p99={p99:.2f} ms max={windows[-1]:.2f} ms")
    robot.close()
    store.close()


def main() -> None:
    """SQLite file, and PostgreSQL when configured; then the lease."""
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    with tempfile.TemporaryDirectory() as folder:
        measure("sqlite-file", f"sqlite:///{folder}/bot.db", rows)
    if os.environ.get("BOT_TEST_POSTGRES_URL"):
        measure("postgresql", scratch_schema(os.environ["BOT_TEST_POSTGRES_URL"]), rows)
    print(f"a killed worker's row is requeued after the lease: {DEFAULT_LEASE:.0f} s "
          "(2 × the 5 s timeout + 2 s), then sent within the next 1 s round")


if __name__ == "__main__":
    main()
