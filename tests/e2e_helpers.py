"""Harness for the end-to-end tests: the real server in a subprocess, customers as WeChat delivers
them, and the storage backends with a way to freeze the store mid-request."""
from __future__ import annotations

import base64
import http.client
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlencode

import requests

from tests.fakes import FakeRobot, FakeWeChat
from tests.wechat_sim import WeChatSim, text_message

ROOT = Path(__file__).resolve().parent.parent
CONFIG_SECTIONS = ("WECHAT", "WECOM", "OPS", "STORAGE", "SERVER", "MATCHING", "ANSWERS")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def poll(check: Callable[[], object], timeout: float, what: str, interval: float = 0.1):
    """Call `check` until it returns something truthy (returned); AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def child_env(workdir: Path) -> dict[str, str]:
    """The environment for `python -m bot`: no stray BOT_* config overrides, our own control socket dir."""
    env = {k: v for k, v in os.environ.items()
           if k != "BOT_CONFIG" and not k.startswith(tuple(f"BOT_{s}_" for s in CONFIG_SECTIONS))}
    # gunicorn 27 puts its control socket in $XDG_RUNTIME_DIR (else ~/.gunicorn): one per server
    return env | {"PYTHONPATH": str(ROOT), "XDG_RUNTIME_DIR": str(workdir), "BOT_LOG_LEVEL": "INFO"}


def run_cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m bot ARGS --config CONFIG` as ops run it; fails the test on a non-zero exit."""
    result = subprocess.run([sys.executable, "-m", "bot", *args, "--config", str(config)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60,
                            env=child_env(config.parent))
    assert result.returncode == 0, f"bot {' '.join(args)} failed: {result.stderr[-2000:]}"
    return result


def children(pid: int) -> set[int]:
    """The live child processes of `pid` (gunicorn's workers when `pid` is the master)."""
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, timeout=10)
    return {int(line) for line in found.stdout.split()}


def start_bot(config: Path, port: int, workers: int) -> ServerProcess:
    """`python -m bot serve --config CONFIG --port PORT --workers N`, as an operator starts it."""
    command = [sys.executable, "-m", "bot", "serve", "--config", str(config), "--port", str(port),
               "--workers", str(workers)]
    return ServerProcess(command, config.parent, port, workers)


def socket_holder(server_port: int, client_port: int, pids: set[int]) -> int | None:
    """The process among `pids` holding the server end of the connection from `client_port`."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        cols = line.split()
        local, remote = (int(addr.rsplit(":", 1)[1], 16) for addr in cols[1:3])
        if (local, remote) == (server_port, client_port):
            inodes.add(f"socket:[{cols[9]}]")
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:  # the process ended meanwhile
            continue
        if any(os.readlink(fd) in inodes for fd in fds if fd.is_symlink()):
            return pid
    return None


class ServerProcess:
    """A gunicorn server (master + workers) in its own process group, answering GET /healthz."""

    def __init__(self, command: list[str], workdir: Path, port: int, workers: int):
        """Start `command` in `workdir`; its output goes to workdir/server.log."""
        self.port, self.workers = port, workers
        self.log_path = workdir / "server.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(command, cwd=ROOT, env=child_env(workdir), stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        """/healthz answers 200 and every worker is up."""
        try:
            ok = requests.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False
        return ok and len(self.worker_pids()) == self.workers

    def wait_ready(self, timeout: float = 90) -> None:
        """Until /healthz answers with all workers booted (the master must stay alive)."""
        poll(lambda: self.proc.poll() is not None or self.healthy(), timeout, "the server to start")
        assert self.proc.poll() is None, f"server exited {self.proc.returncode}:\n{self.log_tail()}"

    def worker_pids(self) -> set[int]:
        """The gunicorn workers now running."""
        return children(self.proc.pid)

    def kill_workers(self) -> set[int]:
        """SIGKILL every worker (no cleanup runs in them); their pids."""
        pids = self.worker_pids()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return pids

    def wait_respawn(self, old: set[int], timeout: float = 90) -> None:
        """Until the master has replaced the killed workers and the server answers again."""
        poll(lambda: not (self.worker_pids() & old) and self.healthy(), timeout, "workers to respawn")

    def stop(self) -> None:
        """SIGTERM the master, wait for a graceful stop, then SIGKILL whatever is left of its group."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group we created: stray workers included
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's log, for failure messages."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Account:
    """The Official Account as WeChat knows it: AppID, token, EncodingAESKey (safe mode)."""

    app_id: str
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    aes_key: str = field(default_factory=lambda: base64.b64encode(os.urandom(32)).decode()[:43])

    def sim(self) -> WeChatSim:
        """WeChat's side, signing with the current time (the server checks freshness)."""
        return WeChatSim(token=self.token, app_id=self.app_id, encoding_aes_key=self.aes_key,
                         now=int(time.time()), nonce=str(uuid.uuid4().int % 10**9))


@dataclass
class Customer:
    """One WeChat user whose messages WeChat's servers deliver to the bot in safe mode."""

    base_url: str
    account: Account
    user: str
    msg_ids: Iterator[int]

    def message(self, content: str) -> str:
        """The XML of a new text message (a fresh MsgId) from this user."""
        return text_message(content, user=self.user, msg_id=str(next(self.msg_ids)),
                            created=int(time.time()))

    def request(self, xml: str) -> tuple[str, bytes, WeChatSim]:
        """(path with signed query, encrypted body, the sim that signed it) for one delivery of `xml`."""
        sim = self.account.sim()
        req = sim.message_request(xml, mode="safe")
        return f"{req['path']}?{urlencode(req['query_string'])}", req["data"], sim

    def post(self, xml: str) -> str | None:
        """Deliver `xml` once; the decrypted reply text, or None for WeChat's "success"."""
        path, body, sim = self.request(xml)
        res = requests.post(self.base_url + path, data=body, timeout=15,
                            headers={"Content-Type": "text/xml", "Connection": "close"})
        assert res.status_code == 200, f"HTTP {res.status_code}: {res.text[:200]}"
        if res.text == "success":
            return None
        fields = sim.open_reply(res.content)
        assert fields["ToUserName"] == self.user
        return fields["Content"]

    def say(self, content: str) -> str | None:
        """Send a new text message and return the reply."""
        return self.post(self.message(content))


class InFlight:
    """One delivery on its own connection (client port known), answered in a background thread."""

    def __init__(self, port: int, path: str, body: bytes):
        """Connect now; send and wait for the answer in the background."""
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.conn.connect()
        self.client_port = self.conn.sock.getsockname()[1]
        self._pool = ThreadPoolExecutor(1)
        self.future: Future = self._pool.submit(self._exchange, path, body)

    def _exchange(self, path: str, body: bytes) -> int:
        """POST and read the whole answer; its HTTP status."""
        self.conn.request("POST", path, body=body, headers={"Content-Type": "text/xml"})
        res = self.conn.getresponse()
        res.read()
        return res.status

    def error(self, timeout: float = 30) -> BaseException | None:
        """The exception the delivery ended with (None if it got an answer)."""
        try:
            return self.future.exception(timeout=timeout)
        finally:
            self.conn.close()
            self._pool.shutdown(wait=False)


def write_config(folder: Path, port: int, account: Account, backend,
                 wechat: FakeWeChat, robot: FakeRobot, extra: dict | None = None) -> Path:
    """The server's TOML: safe mode, FakeWeChat as the API, FakeRobot as the ops webhook; `extra`
    adds sections (or keys of sections)."""
    config = {
        "wechat": {"token": account.token, "app_id": account.app_id, "app_secret": wechat.secret,
                   "encoding_aes_key": account.aes_key, "api_base_url": wechat.url},
        "ops": {"webhook_url": robot.webhook_url, "console_password": uuid.uuid4().hex},
        "storage": {"url": backend.storage_url, "redis_url": backend.redis_url},
        "server": {"public_url": f"http://127.0.0.1:{port}", "port": port, "access_log": True},
    }
    for section, values in (extra or {}).items():
        config[section] = config.get(section, {}) | values
    lines = []
    for section, values in config.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    path = folder / "bot.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass
class Stack:
    """A running bot with its fakes: what the tests drive and inspect."""

    server: ServerProcess
    backend: object  # test_e2e's SqliteBackend / PostgresRedisBackend
    account: Account
    wechat: FakeWeChat
    robot: FakeRobot
    config: Path
    tag: str
    _serial: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def customer(self) -> Customer:
        """A new user (openid and MsgIds unique to this run)."""
        n = next(self._serial)
        msg_ids = itertools.count(int(f"{self.tag}{n:03d}00000000"))
        return Customer(self.server.url, self.account, f"oE2E{self.tag}u{n:03d}", msg_ids)

    def tickets(self, user: str) -> list[dict]:
        """`python -m bot tickets list --json`, the rows of `user`."""
        out = run_cli(self.config, "tickets", "list", "--json").stdout
        return [row for row in map(json.loads, out.splitlines()) if row["user"] == user]

    def ops_messages(self, user: str) -> list[str]:
        """What the group robot accepted about `user`."""
        return [m for m in list(self.robot.messages) if user in m]

    def cs_messages(self, user: str) -> list[str]:
        """Customer-service messages WeChat accepted for `user`."""
        return [content for openid, content in list(self.wechat.messages) if openid == user]

    def wait_outbox(self, user: str, wanted: Callable[[list[tuple[str, str]]], bool], what: str,
                    timeout: float = 30) -> list[tuple[str, str]]:
        """Poll the outbox rows of `user` until `wanted(rows)`."""
        def check():
            """The rows once they are as wanted."""
            rows = self.backend.outbox(user)
            return rows if wanted(rows) else None
        return poll(check, timeout, what, interval=0.25)
