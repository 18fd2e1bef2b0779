"""Webhook round trip: the real bot in safe mode vs a bare Flask endpoint, same gunicorn, one run.

Run: python bench/webhook_bench.py [--requests 400] [--concurrency 1,4,16] [--workers 2]
Starts (a) `python -m bot serve` on SQLite and (b) a bare Flask app under BotServer's own gunicorn
settings (same worker class, threads, workers), then drives both from loopback clients: the bot
gets encrypted text messages (unique MsgId and user, greetings and FAQ questions), the bare app
the very same bytes. Prints p50/p99 latency, requests/s and bot/bare ratios (the spec's bar is
≤ 2×). Asserts nothing.
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from flask import Flask  # noqa: E402

from bot.config import load_config  # noqa: E402
from bot.serve import BotServer  # noqa: E402
from tests.e2e_helpers import Account, ServerProcess, free_port, start_bot  # noqa: E402
from tests.wechat_sim import WeChatSim, text_message  # noqa: E402

MESSAGES = ("你好", "您好，在吗", "数电配置里没有乐企联用通道", "乐企联用通道不显示怎么办",
            "接入单位ID和使用单位ID填反了", "乐企的缓存怎么清", "谢谢", "帮助")
WARMUP = 40


def create_bare_app() -> Flask:
    """The baseline: POST /wechat answers "success" without looking at the body; GET /healthz."""
    app = Flask(__name__)

    @app.post("/wechat")
    def wechat():
        """WeChat's 'no reply' answer."""
        return "success"

    @app.get("/healthz")
    def healthz():
        """Liveness for the harness."""
        return {"status": "ok"}

    return app


class BareServer(BotServer):
    """BotServer's gunicorn options, unchanged, serving the bare app."""

    def load(self):
        """The bare Flask app instead of the bot."""
        return create_bare_app()


@dataclass
class Result:
    """One timed run against one server."""

    latencies: list[float]
    seconds: float
    errors: int
    bodies: list[bytes]

    def p(self, q: float) -> float:
        """Latency percentile `q` (0-100) in ms."""
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[max(0, int(q) - 1)] * 1000

    @property
    def rps(self) -> float:
        """Requests per second over the run's wall time."""
        return len(self.latencies) / self.seconds


def build_requests(account: Account, count: int, serial: itertools.count) -> list[tuple[str, bytes]]:
    """`count` signed, encrypted deliveries, each a new user's text message with its own MsgId."""
    built = []
    for n in range(count):
        i = next(serial)
        xml = text_message(MESSAGES[n % len(MESSAGES)], user=f"oBench{i:022d}", msg_id=str(9 * 10**17 + i),
                           created=int(time.time()))
        sim: WeChatSim = account.sim()
        req = sim.message_request(xml, mode="safe")
        built.append((f"{req['path']}?{urlencode(req['query_string'])}", req["data"]))
    return built


def drive(base_url: str, batch: list[tuple[str, bytes]], concurrency: int) -> Result:
    """Send `batch` with `concurrency` keep-alive clients; latency of each request."""
    chunks = [batch[i::concurrency] for i in range(concurrency)]

    def client(chunk):
        """One client: its share of the requests, one after another."""
        times, errors, bodies = [], 0, []
        with requests.Session() as session:
            for path, body in chunk:
                start = time.perf_counter()
                try:
                    res = session.post(base_url + path, data=body, timeout=30,
                                       headers={"Content-Type": "text/xml"})
                    bodies.append(res.content)
                    errors += res.status_code != 200
                except requests.RequestException:
                    errors += 1
                times.append(time.perf_counter() - start)
        return times, errors, bodies

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        outcomes = list(pool.map(client, chunks))
    seconds = time.perf_counter() - start
    return Result([t for o in outcomes for t in o[0]], seconds, sum(o[1] for o in outcomes),
                  [b for o in outcomes for b in o[2]])


def replies(account: Account, bodies: list[bytes]) -> int:
    """How many answers are encrypted replies that open and verify as WeChat would check them."""
    sim, count = account.sim(), 0
    for body in bodies:
        if body.startswith(b"<xml>"):
            count += bool(sim.open_reply(body).get("Content"))
    return count


def write_bot_config(folder: Path, port: int, account: Account) -> Path:
    """Safe mode, SQLite in `folder`, no ops and no customer-service API (FAQ replies only)."""
    path = folder / "bot.toml"
    path.write_text(f'[wechat]\ntoken = "{account.token}"\napp_id = "{account.app_id}"\n'
                    f'encoding_aes_key = "{account.aes_key}"\n[storage]\nurl = "sqlite:///{folder}/bot.db"\n'
                    f'[server]\npublic_url = "http://127.0.0.1:{port}"\n', encoding="utf-8")
    return path


def start_servers(folder: Path, account: Account, workers: int) -> dict[str, ServerProcess]:
    """The bare app and the bot, both booting at once."""
    bare_port, bot_port = free_port(), free_port()
    bare_dir, bot_dir = folder / "bare", folder / "bot"
    bare_dir.mkdir()
    bot_dir.mkdir()
    bare = ServerProcess([sys.executable, __file__, "--serve-bare", str(bare_port), "--workers", str(workers)],
                         bare_dir, bare_port, workers)
    bot = start_bot(write_bot_config(bot_dir, bot_port, account), bot_port, workers)
    return {"bare": bare, "bot": bot}


def report(level: int, results: dict[str, Result], account: Account) -> None:
    """Print one concurrency level: both servers and the bot/bare ratios."""
    for name, r in results.items():
        print(f"{level:>5}  {name:<5} {r.p(50):8.2f} {r.p(99):8.2f} {r.rps:9.1f} {r.errors:7d} "
              f"{replies(account, r.bodies):8d}")
    bare, bot = results["bare"], results["bot"]
    print(f"{level:>5}  ratio {bot.p(50) / bare.p(50):7.2f}x {bot.p(99) / bare.p(99):7.2f}x "
          f"{bare.rps / bot.rps:8.2f}x   (bot cost / bare cost)")


def run(args: argparse.Namespace) -> None:
    """Start both servers, warm them up, drive each concurrency level, print the table."""
    account, serial = Account(app_id="wxbench0000000001"), itertools.count(1)
    with tempfile.TemporaryDirectory(prefix="webhook-bench-") as tmp:
        servers = start_servers(Path(tmp), account, args.workers)
        try:
            for server in servers.values():
                server.wait_ready()
                drive(server.url, build_requests(account, WARMUP, serial), 4)
            print(f"{args.requests} requests per level, {args.workers} workers, loopback clients")
            print(f"{'conc':>5}  {'srv':<5} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>9} {'errors':>7} {'replies':>8}")
            for level in args.concurrency:
                batch = build_requests(account, args.requests, serial)
                results = {name: drive(server.url, batch, level) for name, server in servers.items()}
                report(level, results, account)
        finally:
            for server in servers.values():
                server.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="requests per level and server")
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    options = parse_args()
    if options.serve_bare:
        BareServer(load_config(None), "127.0.0.1", options.serve_bare, options.workers).run()
    else:
        run(options)
