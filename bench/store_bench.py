"""Store hot-path latency per backend: what the service does per message (prints ms).

One message's turn: the read (state, tax ID, held flag, a stored reply) and the one write
transaction (claim, reply, state, transcript, hit) — `Turns.turn` + `Turn.commit`.

Usage: python bench/store_bench.py [N]   (PostgreSQL/Redis via BOT_TEST_POSTGRES_URL / BOT_TEST_REDIS_URL)
"""
from __future__ import annotations

import atexit
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text  # noqa: E402

from bot.model import Stage  # noqa: E402
from bot.store.base import TurnRecord  # noqa: E402
from bot.store.redis_state import RedisTurns, redis_store  # noqa: E402
from bot.store.sql import Db, sql_store  # noqa: E402


def backends(tmp: str) -> dict:
    """Name -> store factory for every backend reachable here."""
    found = {"sqlite-memory": lambda: sql_store(Db("sqlite://")),
             "sqlite-file": lambda: sql_store(Db(f"sqlite:///{tmp}/bench.db"))}
    pg, rd = os.environ.get("BOT_TEST_POSTGRES_URL"), os.environ.get("BOT_TEST_REDIS_URL")
    if pg:
        found["postgresql"] = lambda: sql_store(Db(scratch_schema(pg)))
    if rd:
        found["redis+sqlite"] = lambda: redis_store(rd, Db(f"sqlite:///{tmp}/bench-r.db"),
                                                    f"bench:{uuid.uuid4().hex}:")
    if pg and rd:
        found["redis+postgresql"] = lambda: redis_store(rd, Db(scratch_schema(pg)), f"bench:{uuid.uuid4().hex}:")
    return found


def scratch_schema(url: str) -> str:
    """A URL on a fresh PostgreSQL schema (dropped at exit), so the bench leaves no rows behind."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    atexit.register(drop_schema, admin, name)
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{name}"


def drop_schema(admin, name: str) -> None:
    """Drop the bench schema."""
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
    admin.dispose()


def forget_redis_keys(store) -> None:
    """Delete the bench's Redis keys."""
    turns = store.turns
    if isinstance(turns, RedisTurns):
        for key in turns.redis.scan_iter(f"{turns.prefix}*"):
            turns.redis.delete(key)


def one_message(store, i: int) -> float:
    """Seconds for the store work of one inbound message."""
    start = time.perf_counter()
    key, user, now = f"bench-{uuid.uuid4().hex}", f"user-{i % 50}", time.time()
    with store.turns.turn(key, user, now) as turn:
        session = replace(turn.session, stage=Stage.AWAITING_TAX_ID, updated_at=now)
        turn.commit(lambda tx: TurnRecord(reply="reply", session=session, hits=("leqi-channel-missing",),
                                          lines=(("in", "乐企通道不显示"), ("out", "reply"))))
    return time.perf_counter() - start


def main(count: int) -> None:
    """Print p50/p99 per backend."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, factory in backends(tmp).items():
            store = factory()
            one_message(store, -1)  # warm-up
            samples = sorted(one_message(store, i) * 1000 for i in range(count))
            p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
            print(f"{name:14s} n={count} p50={statistics.median(samples):.2f} ms p99={p99:.2f} ms")
            forget_redis_keys(store)
            store.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
