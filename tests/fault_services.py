"""Services the fault tests break on purpose, each started and stopped by the test that needs it:
a throwaway PostgreSQL cluster, a private redis-server, a small tmpfs — and WeChat's retry policy.

Never the machine's own PostgreSQL (5432) or Redis (6379): everything here listens on a free
port of 127.0.0.1 and lives in a temporary folder.
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.e2e_helpers import Customer, free_port, poll

PG_BIN = Path(os.environ.get("BOT_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
WECHAT_TIMEOUT = 5.0  # WeChat drops a delivery not answered within 5 s …
WECHAT_RETRIES = 3  # … and sends it again, three times at most


def _as_postgres(command: list[str]) -> list[str]:
    """`command` run as the postgres user when we are root (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


class PgCluster:
    """initdb into a temp folder, then pg_ctl start/stop on a free port (trust auth, loopback only)."""

    def __init__(self):
        """Create the cluster (owned by postgres when we are root) and start it."""
        self.folder = Path(tempfile.mkdtemp(prefix="bot-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        self._run([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                   "--no-sync", "-E", "UTF8"])
        self.start()

    @property
    def url(self) -> str:
        """The bot's storage URL for this cluster."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, command: list[str]) -> None:
        """Run a PostgreSQL tool (as postgres when root); fail with its output."""
        done = subprocess.run(_as_postgres(command), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{command[0]} failed: {done.stdout[-1500:]}{done.stderr[-1500:]}"

    def start(self) -> None:
        """Start (or restart) the server and wait until it accepts connections."""
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c full_page_writes=off")
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "pg.log"),
                   "-o", options, "-w", "-t", "60", "start"])

    def stop(self) -> None:
        """Stop it now (fast shutdown: open connections are cut, as in an outage)."""
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def destroy(self) -> None:
        """Stop if running and delete the cluster."""
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                                     "stop"]), capture_output=True, timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)


class RedisServer:
    """A redis-server of our own on a free port, without persistence (a restart forgets all)."""

    def __init__(self):
        """Start it."""
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        """The bot's redis_url."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start on our port and wait for PONG."""
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        poll(lambda: subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True,
                                    text=True).stdout.strip() == "PONG", 20, "redis-server to start")

    def shutdown_nosave(self) -> None:
        """`SHUTDOWN NOSAVE`: Redis stops and forgets every key."""
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown", "nosave"], capture_output=True,
                       timeout=20)
        self.proc.wait(timeout=20)

    def destroy(self) -> None:
        """Kill whatever is left."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=20)


class Tmpfs:
    """A small tmpfs (root only) that can be filled up to the last byte and emptied again."""

    def __init__(self, size_kib: int):
        """Mount `size_kib` KiB on a new temp folder; OSError when mounting is not allowed."""
        self.path = Path(tempfile.mkdtemp(prefix="bot-full-"))
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0700", "tmpfs",
                               str(self.path)], capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            self.path.rmdir()
            raise OSError(f"cannot mount a tmpfs: {done.stderr.strip()}")
        self.filler = self.path / "filler"

    def fill(self) -> None:
        """Write until the disk is full (it may be already)."""
        for chunk in (65536, 1):
            try:
                with open(self.filler, "ab") as out:
                    while True:
                        out.write(b"\0" * chunk)
                        out.flush()
            except OSError:
                pass

    def free(self) -> None:
        """Delete the filler."""
        self.filler.unlink(missing_ok=True)

    def destroy(self) -> None:
        """Unmount and remove."""
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True, timeout=30)
        shutil.rmtree(self.path, ignore_errors=True)


@dataclass
class Delivery:
    """How WeChat's delivery of one message went: each attempt's outcome, and the reply it kept."""

    attempts: list[str] = field(default_factory=list)  # "200", "503", "timeout", "refused" …
    reply: str | None = None  # the decrypted text of the 200 answer (None: "success")

    @property
    def delivered(self) -> bool:
        """Some attempt was answered 200: WeChat stops retrying."""
        return "200" in self.attempts


def deliver_like_wechat(customer: Customer, xml: str) -> Delivery:
    """POST `xml` as WeChat does: 5 s timeout, then up to 3 retries, each about 5 s after the last."""
    outcome = Delivery()
    for attempt in range(1 + WECHAT_RETRIES):
        began = time.monotonic()
        path, body, sim = customer.request(xml)
        try:
            res = requests.post(customer.base_url + path, data=body, timeout=WECHAT_TIMEOUT,
                                headers={"Content-Type": "text/xml", "Connection": "close"})
        except requests.Timeout:
            outcome.attempts.append("timeout")
        except requests.ConnectionError:
            outcome.attempts.append("refused")
        else:
            outcome.attempts.append(str(res.status_code))
            if res.status_code == 200:
                outcome.reply = None if res.text == "success" else sim.open_reply(res.content)["Content"]
                return outcome
        if attempt < WECHAT_RETRIES:
            time.sleep(max(0.0, began + WECHAT_TIMEOUT - time.monotonic()))
    return outcome
