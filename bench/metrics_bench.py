"""GET /metrics at a million rows: the scrape must stay cheap however much history piles up.

Fills a SQLite file (and PostgreSQL when BOT_TEST_POSTGRES_URL is set) with ROWS resolved
tickets, sent outbox rows, hits and unanswered questions, then times scrapes of the real app's
/metrics (Flask test client, in process). Prints p50/max; asserts nothing.

    python bench/metrics_bench.py [ROWS]        # default 1,000,000
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, text  # noqa: E402

from bot.app import create_app  # noqa: E402
from bot.config import ServerConfig, StorageConfig, WeChatConfig, load_config  # noqa: E402
from bot.store.sql import Db as SqlStore  # noqa: E402
from bot.store.schema import hits, outbox_table, tickets, unanswered  # noqa: E402

SCRAPES = 30
CHUNK = 50_000


def fill(store: SqlStore, rows: int) -> None:
    """ROWS of each kind of history, inserted in chunks."""
    for start in range(0, rows, CHUNK):
        ids = range(start, min(rows, start + CHUNK))
        with store.engine.begin() as conn:
            conn.execute(insert(tickets), [dict(user=f"u{i}", kind="channel", intent="leqi-channel-missing",
                                                status="resolved", tax_id="91110108551385082Q", flags=[],
                                                words="w", channel="wechat", source_key=f"k{i}",
                                                created_at=float(i), resolved_at=float(i)) for i in ids])
            conn.execute(insert(outbox_table), [dict(target="ops", user="", payload={"markdown": "m"},
                                                     status="sent", attempts=0, next_at=0.0,
                                                     created_at=float(i), sent_at=float(i)) for i in ids])
            conn.execute(insert(hits), [dict(intent=f"i{i % 50}", at=float(i)) for i in ids])
            conn.execute(insert(unanswered), [dict(user=f"u{i}", text=f"问题 {i % 5000}", at=float(i))
                                              for i in ids])


def analyze(store: SqlStore) -> None:
    """PostgreSQL: refresh planner statistics, as autovacuum would after a bulk load."""
    if store.engine.dialect.name == "postgresql":
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))


def scrape_times(url: str) -> list[float]:
    """Milliseconds per GET /metrics on the app over `url`."""
    config = replace(load_config(None), wechat=WeChatConfig(token="bench"), storage=StorageConfig(url=url),
                     server=ServerConfig())
    client = create_app(config).test_client()
    times = []
    for _ in range(SCRAPES):
        began = time.perf_counter()
        assert client.get("/metrics").status_code == 200
        times.append((time.perf_counter() - began) * 1000)
    return times


def run(name: str, url: str, rows: int) -> None:
    """Fill, then scrape and print."""
    began = time.perf_counter()
    store = SqlStore(url)
    fill(store, rows)
    analyze(store)
    store.close()
    filled = time.perf_counter() - began
    times = scrape_times(url)
    print(f"{name:12} rows={rows:,} (fill {filled:.0f} s)  /metrics p50={statistics.median(times):.1f} ms"
          f"  max={max(times):.1f} ms  ({SCRAPES} scrapes)")


def main() -> None:
    """Run on SQLite, and PostgreSQL when configured."""
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as folder:
        run("sqlite-file", f"sqlite:///{folder}/bot.db", rows)
    pg = os.environ.get("BOT_TEST_POSTGRES_URL")
    if pg:
        from sqlalchemy import create_engine
        schema = f"metrics_bench_{os.getpid()}"
        admin = create_engine(pg.replace("postgresql://", "postgresql+psycopg://", 1))
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            sep = "&" if "?" in pg else "?"
            run("postgresql", f"{pg}{sep}options=-csearch_path%3D{schema}", rows)
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


if __name__ == "__main__":
    main()
