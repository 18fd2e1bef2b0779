"""Driving a server with wrk and accounting for the CPU: who used the two cores during a run."""
from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

LUA = Path(__file__).resolve().parent / "webhook.lua"
TICK = os.sysconf("SC_CLK_TCK")


def ensure_wrk() -> str:
    """The wrk binary, installed from Debian's package when missing (the bench's own setup)."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: apt-get install -y wrk", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, env=env, stdout=subprocess.DEVNULL)
    return shutil.which("wrk") or "wrk"


def process_seconds(pids) -> float:
    """CPU seconds (user + system) used so far by the live processes `pids`."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total / TICK


def machine_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / TICK, sum(values) / TICK


@dataclass(frozen=True)
class Run:
    """One wrk run against one server, with where the CPU went meanwhile."""

    rps: float
    p50: float  # ms
    p99: float  # ms
    requests: int
    errors: int  # connect/read/write/timeout errors and non-2xx answers
    wraps: int  # times a wrk thread ran out of distinct requests and started over
    wrk_cpu: float  # share of one core used by wrk
    server_cpu: float  # share of one core used by the server (master + workers)
    other_cpu: float  # share of one core used by everything else on the machine

    @classmethod
    def parse(cls, out: dict, cpu: dict) -> Run:
        """From wrk's JSON line and the CPU accounting."""
        seconds = out["duration_us"] / 1e6
        errors = sum(out[k] for k in ("connect", "read", "write", "status", "timeout"))
        return cls(rps=out["requests"] / seconds, p50=out["p50_us"] / 1000, p99=out["p99_us"] / 1000,
                   requests=out["requests"], errors=errors, wraps=out["wraps"], **cpu)


def run_wrk(url: str, requests_file: Path, seconds: float, connections: int, threads: int,
            server_pids) -> Run:
    """wrk for `seconds` with `connections` over `threads`; server_pids() names the server's processes."""
    pids = server_pids()
    server_before, (busy_before, _), wall_before = process_seconds(pids), machine_seconds(), _wall()
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s",
                           "--timeout", "10s", "-s", str(LUA), url, "--", str(requests_file), str(threads)],
                          capture_output=True, text=True, timeout=seconds + 60)
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = _wall() - wall_before
    line = next((line for line in done.stdout.splitlines() if line.startswith("{")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr[-500:]} {done.stdout[-500:]}")
    wrk_seconds = (wrk_after.ru_utime - wrk_before.ru_utime) + (wrk_after.ru_stime - wrk_before.ru_stime)
    server_seconds = process_seconds(pids) - server_before
    busy = machine_seconds()[0] - busy_before
    cpu = {"wrk_cpu": wrk_seconds / wall, "server_cpu": server_seconds / wall,
           "other_cpu": max(0.0, busy - wrk_seconds - server_seconds) / wall}
    return Run.parse(json.loads(line), cpu)


def _wall() -> float:
    """Monotonic seconds."""
    return os.times().elapsed
