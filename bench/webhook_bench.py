"""Safe-mode webhook throughput and latency under wrk: bare Flask, the bot (SQLite; PostgreSQL+Redis), WeRoBot.

Run: python bench/webhook_bench.py [--duration 10] [--runs 3] [--connections 8] [--workers 2]
         [--worker-class gthread] [--threads 16] [--servers bare,sqlite,pg,werobot]
PostgreSQL and Redis come from BOT_TEST_POSTGRES_URL / BOT_TEST_REDIS_URL (a scratch schema and
key names of this run, removed at the end); without them the pg server is skipped, and said so.

Every server runs under the bot's own gunicorn options (`bot.serve.BotServer`, from one [server]
section), one at a time while the others idle. wrk (Debian package, installed here when missing)
posts pre-generated, distinct, signed and encrypted customer messages (bench/messages.py: FAQ,
small talk, tax IDs, 转人工, out of scope; a MsgId, user and nonce each). Before the servers, wrk
drives a trivial asyncio endpoint to show how much load it can generate on this machine: it must
reach ≥ 3× the bare server's rate, or wrk — not the server — would be what is measured. Each run
also reports where the CPU went (server, wrk, everything else). Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import atexit
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench.load import Run, ensure_wrk, run_wrk  # noqa: E402
from bench.messages import write_requests  # noqa: E402
from bench.store_bench import scratch_schema  # noqa: E402
from bot.config import ServerConfig  # noqa: E402
from tests.e2e_helpers import Account, ServerProcess, free_port, start_bot  # noqa: E402
from tests.wechat_sim import WeChatSim  # noqa: E402

WEROBOT = "werobot==1.13.1"
WEROBOT_DEPS = ("bottle==0.13.4",)  # requests, xmltodict and cryptography come with the bot
WEROBOT_LIB = Path.home() / ".cache" / "leqi-bench" / "werobot-1.13.1"
WARMUP_SECONDS = 2
SAMPLE = 30  # requests sent one by one to check the answers decrypt and verify
LABELS = {"bare": "bare Flask", "sqlite": "bot, SQLite", "pg": "bot, PostgreSQL+Redis",
          "werobot": "WeRoBot 1.13.1"}
MAX_RATE = 6000  # req/s no server here reaches: sizes the request files so that wrk never wraps


def ensure_werobot() -> Path:
    """WeRoBot in a folder of its own (not a dependency of the bot): pip install --target once."""
    if not (WEROBOT_LIB / "werobot").is_dir():
        print(f"installing {WEROBOT} into {WEROBOT_LIB}", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                        str(WEROBOT_LIB), WEROBOT, *WEROBOT_DEPS], check=True)
    return WEROBOT_LIB


def write_config(folder: Path, account: Account, args, storage: str) -> Path:
    """One server's config: safe mode, `storage` lines, the shared [server] options, no [ops]."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bot.toml"
    path.write_text(
        f'[wechat]\ntoken = "{account.token}"\napp_id = "{account.app_id}"\n'
        f'encoding_aes_key = "{account.aes_key}"\n[storage]\n{storage}\n'
        f'[server]\nworkers = {args.workers}\nworker_class = "{args.worker_class}"\n'
        f'threads = {args.threads}\naccess_log = {str(args.access_log).lower()}\n'
        + (f'messages_at_once = {args.messages_at_once}\n' if args.messages_at_once is not None else ""),
        encoding="utf-8")
    return path


def start(kind: str, folder: Path, account: Account, args) -> ServerProcess:
    """Start one server (its processes in their own group)."""
    port = free_port()
    if kind in ("sqlite", "pg"):
        storage = (f'url = "sqlite:///{folder / kind}/bot.db"' if kind == "sqlite" else
                   f'url = "{scratch_schema(args.postgres_url)}"\nredis_url = "{args.redis_url}"')
        return start_bot(write_config(folder / kind, account, args, storage), port, args.workers)
    config = write_config(folder / kind, account, args, f'url = "sqlite:///{folder / kind}/unused.db"')
    command = [sys.executable, str(ROOT / "bench" / "servers.py"), kind, str(port), str(config)]
    if kind == "werobot":
        command.append(str(ensure_werobot()))
    return ServerProcess(command, folder / kind, port, 0 if kind == "trivial" else args.workers)


def check_answers(server: ServerProcess, account: Account, requests_file: Path) -> str:
    """Send SAMPLE requests one by one; how many got a reply that decrypts and verifies."""
    sim, replies, errors = WeChatSim(account.token, account.app_id, account.aes_key), 0, 0
    with requests.Session() as session:
        for line in requests_file.read_text(encoding="utf-8").splitlines()[:SAMPLE]:
            path, body = line.split("\t", 1)
            res = session.post(server.url + path, data=body.encode(), headers={"Content-Type": "text/xml"})
            errors += res.status_code != 200
            if res.content.startswith(b"<xml>"):
                replies += bool(sim.open_reply(res.content).get("Content"))
    return f"{replies}/{SAMPLE} verified replies, {errors} errors"


class Bench:
    """One invocation: the servers, the request files, the runs."""

    def __init__(self, args, folder: Path):
        """Remember the options; nothing starts yet."""
        self.args, self.folder = args, folder
        self.account = Account(app_id="wxbench0000000001")
        self.tag, self.files = random.randrange(1000, 10000), 0

    def requests_file(self, seconds: float = SAMPLE / MAX_RATE) -> Path:
        """A fresh file of distinct requests for `seconds` of load, freshly signed (WeChat's
        timestamps must be within 300 s of the server's clock)."""
        self.files += 1
        path = self.folder / f"requests-{self.files}.txt"
        count = int(MAX_RATE * seconds)
        write_requests(path, self.account, count, run_id=self.tag * 100 + self.files, seed=self.files)
        return path

    def measure(self, server: ServerProcess, seconds: float) -> Run:
        """Warm up, then one wrk run on fresh messages."""
        a = self.args
        pids = lambda: {server.proc.pid, *server.worker_pids()}  # noqa: E731
        for length in (WARMUP_SECONDS, seconds):
            measured = run_wrk(server.url + "/wechat", self.requests_file(length), length, a.connections,
                               a.wrk_threads, pids)
        return measured

    def capacity(self) -> Run:
        """What wrk drives against an endpoint that does (almost) nothing."""
        server = start("trivial", self.folder, self.account, self.args)
        try:
            server.wait_ready()
            return self.measure(server, min(5, self.args.duration))
        finally:
            server.stop()

    def servers(self) -> dict[str, ServerProcess]:
        """Start every requested server and check a sample of answers."""
        started = {kind: start(kind, self.folder, self.account, self.args) for kind in self.args.servers}
        atexit.register(lambda: [s.stop() for s in started.values()])
        for kind, server in started.items():
            server.wait_ready()
            print(f"  {LABELS[kind]:<24} ready; sample: {check_answers(server, self.account, self.requests_file())}")
        return started


def print_run(kind: str, run: Run) -> None:
    """One line per run."""
    print(f"  {LABELS[kind]:<24} {run.rps:8.0f} {run.p50:7.2f} {run.p99:8.2f} {run.errors:6d} {run.wraps:5d}"
          f"   {run.server_cpu * 100:4.0f} % {run.wrk_cpu * 100:4.0f} % {run.other_cpu * 100:4.0f} %"
          f"   {cpu_per_request(run):6.3f}")


def cpu_per_request(run: Run) -> float:
    """Server CPU ms per request: what a message costs, less sensitive to the machine's load than req/s."""
    return run.server_cpu / run.rps * 1000 if run.rps else 0.0


def summary(results: dict[str, list[Run]], trivial: Run) -> None:
    """Median and spread per server, ratios to bare and WeRoBot, the bars and the load generator check."""
    print("\nsummary (median of runs; spread = min–max)")
    print(f"  {'server':<24} {'req/s':>8} {'spread':>13} {'p50 ms':>7} {'p99 ms':>8} {'p99 max':>8} {'× bare':>7}"
          f" {'CPU ms/req':>11}")
    rps = {k: statistics.median(r.rps for r in runs) for k, runs in results.items()}
    for kind, runs in results.items():
        ratio = f"{rps[kind] / rps['bare']:7.2f}" if "bare" in rps else "      -"
        print(f"  {LABELS[kind]:<24} {rps[kind]:8.0f} {min(r.rps for r in runs):6.0f}–{max(r.rps for r in runs):<6.0f}"
              f" {statistics.median(r.p50 for r in runs):7.2f} {statistics.median(r.p99 for r in runs):8.2f}"
              f" {max(r.p99 for r in runs):8.2f} {ratio} {min(map(cpu_per_request, runs)):6.3f}–"
              f"{max(map(cpu_per_request, runs)):.3f}")
    if "bare" in rps:
        factor = trivial.rps / rps["bare"]
        verdict = "not the bottleneck" if factor >= 3 else "MAY BE THE BOTTLENECK: figures below are a floor"
        print(f"\nload generator: wrk drove a trivial endpoint at {trivial.rps:.0f} req/s = {factor:.1f}× the bare "
              f"server (needs ≥ 3×): wrk is {verdict}; during the bare runs wrk used "
              f"{statistics.median(r.wrk_cpu for r in results['bare']) * 100:.0f} % of one core")
        for kind, bar in (("sqlite", 0.3), ("pg", 0.25)):
            if kind in rps:
                p99 = statistics.median(r.p99 for r in results[kind])
                print(f"bar: {LABELS[kind]} = {rps[kind] / rps['bare']:.2f}× bare (≥ {bar}); p99 {p99:.1f} ms"
                      f"{' (≤ 15 ms)' if kind == 'sqlite' else ''}")
    if "werobot" in rps and "sqlite" in rps:
        print(f"bar: {LABELS['sqlite']} = {rps['sqlite'] / rps['werobot']:.1f}× WeRoBot (≥ 3×)")


def run(args) -> None:
    """Start the servers, check wrk, measure each server `runs` times, interleaved."""
    ensure_wrk()
    if "pg" in args.servers and not (args.postgres_url and args.redis_url):
        print("pg skipped: set BOT_TEST_POSTGRES_URL and BOT_TEST_REDIS_URL (or --postgres-url/--redis-url)")
        args.servers = [k for k in args.servers if k != "pg"]
    with tempfile.TemporaryDirectory(prefix="webhook-bench-") as tmp:
        bench = Bench(args, Path(tmp))
        print(f"{args.connections} connections, {args.workers} workers ({args.worker_class}"
              f"{f' × {args.threads} threads' if args.worker_class == 'gthread' else ''}), access log "
              f"{'on' if args.access_log else 'off'}, wrk -t{args.wrk_threads}, {args.duration:g} s per run")
        trivial = bench.capacity()
        servers = bench.servers()
        results: dict[str, list[Run]] = {kind: [] for kind in servers}
        print(f"\n  {'server':<24} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>8} {'errors':>6} {'wraps':>5}"
              f"   server    wrk  other  (CPU, % of one core)  server CPU ms/req")
        for n in range(args.runs):
            print(f"run {n + 1}")
            for kind, server in servers.items():
                results[kind].append(bench.measure(server, args.duration))
                print_run(kind, results[kind][-1])
        for server in servers.values():
            server.stop()
        if "pg" in servers:
            forget_redis_keys(args.redis_url, bench.tag)
        summary(results, trivial)


def forget_redis_keys(redis_url: str, tag: int) -> None:
    """Delete this run's dedupe and session keys (they would expire anyway)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    for pattern in (f"leqi:msg:wechat:{tag}*", f"leqi:session:oBench{tag}*"):
        for key in client.scan_iter(pattern, count=1000):
            client.delete(key)
    client.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    import os

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per measured run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", default="gthread", choices=("sync", "gthread"))
    parser.add_argument("--threads", type=int, default=ServerConfig().threads, help="threads per gthread worker")
    parser.add_argument("--messages-at-once", type=int, default=None,
                        help="[server] messages_at_once of the bot (default: the config's)")
    parser.add_argument("--access-log", action="store_true", help="turn the access log on (default off)")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--servers", type=lambda s: s.split(","), default=["bare", "sqlite", "pg", "werobot"])
    parser.add_argument("--postgres-url", default=os.environ.get("BOT_TEST_POSTGRES_URL", ""))
    parser.add_argument("--redis-url", default=os.environ.get("BOT_TEST_REDIS_URL", ""))
    return parser.parse_args(argv)


if __name__ == "__main__":
    run(parse_args())
