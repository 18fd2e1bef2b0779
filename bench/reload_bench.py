"""How long an author waits: from saving an answer file to the server answering with it.

Starts `python -m bot serve` (2 workers, SQLite, a temporary copy of answers/), edits an answer N
times and polls its web page (/answers/<id>) until the edit shows. Prints each wait in seconds.
Run from the repository root: `python bench/reload_bench.py [--edits 3]`.
"""
from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ANSWER = "leqi-channel-missing"
ANCHOR = "解决步骤："


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def page(port: int) -> str:
    """The answer's web page, or "" while the server is not up."""
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/answers/{ANSWER}", timeout=2).read().decode()
    except OSError:
        return ""


def wait_for(check, timeout: float) -> float:
    """Seconds until check() is true (SystemExit after `timeout`)."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise SystemExit(f"gave up after {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - start


def main() -> int:
    """Serve, edit, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="reload-bench-"))
    shutil.copytree(ROOT / "answers", folder / "answers")
    port = free_port()
    (folder / "bot.toml").write_text(
        f'[wechat]\ntoken = "reload-bench-token"\napp_id = "wx0"\n[storage]\nurl = "sqlite:///{folder}/bot.db"\n'
        f'[server]\nport = {port}\nworkers = 2\ndev = true\n[answers]\ndir = "answers"\n', encoding="utf-8")
    server = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--config", str(folder / "bot.toml")],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": str(folder)})
    try:
        wait_for(lambda: page(port), 90)
        path, waits = folder / "answers" / f"{ANSWER}.md", []
        for n in range(args.edits):
            text = path.read_text(encoding="utf-8").replace(ANCHOR, f"{ANCHOR}（第{n}版）" if n == 0 else ANCHOR, 1)
            text = text.replace(f"（第{n - 1}版）", f"（第{n}版）")
            path.write_text(text, encoding="utf-8")
            waits.append(wait_for(lambda: f"第{n}版" in page(port), 60))
            time.sleep(3)  # let the replaced workers settle before the next edit
        print(f"edit → served, {args.edits} edits, 2 workers: " + ", ".join(f"{w:.1f} s" for w in waits))
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
