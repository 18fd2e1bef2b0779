"""Where one message's milliseconds go: protocol, matching, dialogue, templates, store, HTTP stack.

Run: python bench/hotpath_bench.py [N] [--storage sqlite|memory|URL]
Sends N messages of the webhook benchmark's mix (bench/messages.py) through the real app
(`create_app`, safe mode, a SQLite file unless told otherwise) as gunicorn does — the WSGI
callable with a ready environ (built before the clock starts, so no test-client work is timed) —
in one process, one at a time, and times each part exclusively (a part's time excludes the parts it
calls): the WeChat protocol (verify, decrypt, parse, encrypt the reply), understanding (the
matcher), commands (the dialogue's command recognition, bot.understanding.commands), templates (every kb.render), the dialogue's own logic, the store (a turn's read and its
write transaction, the replay check of the timestamp+nonce included), and the rest (Flask's request handling, the service's glue). Prints ms per message.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.messages import write_requests  # noqa: E402
from bot.app import create_app  # noqa: E402
from bot.config import StorageConfig, WeChatConfig, load_config  # noqa: E402
from werkzeug.test import EnvironBuilder  # noqa: E402
from tests.e2e_helpers import Account  # noqa: E402

PARTS = ("protocol", "understanding", "commands", "templates", "dialogue", "store", "rest")


class Clock:
    """Exclusive timers: each part's time minus the time of the timed parts it called."""

    def __init__(self):
        """Empty totals."""
        self.totals: dict[str, float] = defaultdict(float)
        self.stack: list[list] = []

    def wrap(self, part: str, fn):
        """`fn` timed as `part`."""
        def timed(*args, **kwargs):
            """Run `fn`, charge its exclusive time to `part`."""
            frame = [time.perf_counter(), 0.0]
            self.stack.append(frame)
            try:
                return fn(*args, **kwargs)
            finally:
                self.stack.pop()
                spent = time.perf_counter() - frame[0]
                self.totals[part] += spent - frame[1]
                if self.stack:
                    self.stack[-1][1] += spent
        return timed


def instrument(app, clock: Clock) -> None:
    """Put timers around the parts of the running app."""
    from bot.channels import callback

    parts = app.extensions["bot"]
    kb, store = parts.kb, parts.store
    kb.matcher.match = clock.wrap("understanding", kb.matcher.match)
    kb.render = clock.wrap("templates", kb.render)
    kb.short_answer = clock.wrap("templates", kb.short_answer)
    from bot.conversation import turn as conversation_turn

    conversation_turn.recognise = clock.wrap("commands", conversation_turn.recognise)
    for name in ("open_message", "build_reply"):
        setattr(callback, name, clock.wrap("protocol", getattr(callback, name)))
    conversation = parts.service.conversation
    object.__setattr__(conversation, "step", clock.wrap("dialogue", conversation.step))  # a frozen dataclass
    turns = store.turns
    real_turn = turns.turn

    def turn(*args, **kwargs):
        """The turn's read, and its commit, timed as store (the work inside is charged to its parts)."""
        manager = real_turn(*args, **kwargs)
        enter, leave = clock.wrap("store", manager.__enter__), clock.wrap("store", manager.__exit__)

        class Timed:
            """The context manager with a timed enter, commit and exit."""

            def __enter__(self):
                """Read."""
                found = enter()
                found.commit = clock.wrap("store", found.commit)
                return found

            def __exit__(self, *exc):
                """End the transaction."""
                return leave(*exc)
        return Timed()
    turns.turn = turn
    parts.service.handle = clock.wrap("rest", parts.service.handle)


def build_app(folder: Path, account: Account, storage: str):
    """The bot's app in safe mode on `storage`."""
    url = {"sqlite": f"sqlite:///{folder}/bot.db", "memory": "sqlite://"}.get(storage, storage)
    config = load_config(None)
    from dataclasses import replace

    config = replace(config, wechat=WeChatConfig(token=account.token, app_id=account.app_id,
                                                 encoding_aes_key=account.aes_key),
                     storage=StorageConfig(url=url))
    return create_app(config)


def environ_of(line: str) -> dict:
    """The WSGI environ gunicorn would pass for one request line ("target\tbody")."""
    target, body = line.split("\t", 1)
    return EnvironBuilder(target, method="POST", data=body.encode("utf-8"),
                          content_type="text/xml").get_environ()


def post(app, environ: dict) -> int:
    """One request through the WSGI callable; its status code (the body is read, as a server would)."""
    status = []
    environ["wsgi.input"].seek(0)
    chunks = app(environ, lambda code, headers, exc_info=None: status.append(code))
    b"".join(chunks)
    getattr(chunks, "close", lambda: None)()
    return int(status[0].split()[0])


def main(count: int, storage: str) -> None:
    """Send `count` messages; print the exclusive ms per message of each part."""
    account = Account(app_id="wxbench0000000001")
    with tempfile.TemporaryDirectory() as tmp:
        app = build_app(Path(tmp), account, storage)
        path = Path(tmp) / "requests.txt"
        write_requests(path, account, count + 200, run_id=1, seed=3)
        environs = [environ_of(line) for line in path.read_text(encoding="utf-8").splitlines()]
        for environ in environs[:200]:  # warm-up: caches, connections, first compilations
            post(app, environ)
        kb = app.extensions["bot"].kb
        before = kb.matcher._cached.cache_info()
        clock = Clock()
        instrument(app, clock)
        timed = clock.wrap("rest", post)
        start, cpu = time.perf_counter(), time.process_time()
        for environ in environs[200:]:
            status = timed(app, environ)
            assert status == 200, status
        total, cpu = time.perf_counter() - start, time.process_time() - cpu
        after = kb.matcher._cached.cache_info()
    print(f"{count} messages, {storage}, one at a time in one process: {total / count * 1000:.3f} ms per message"
          f" ({cpu / count * 1000:.3f} ms of CPU: less than wall time when the machine is busy)")
    for part in PARTS:
        ms = clock.totals[part] / count * 1000
        print(f"  {part:<14} {ms:7.3f} ms  {clock.totals[part] / total * 100:5.1f} %")
    hits, misses = after.hits - before.hits, after.misses - before.misses
    print(f"  matcher verdicts from its cache (the same text again): {hits} of {hits + misses} "
          f"({hits / max(1, hits + misses) * 100:.0f} %); a longer run or a narrower mix hits more")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=2000)
    parser.add_argument("--storage", default="sqlite", help="sqlite (a file), memory, or a database URL")
    options = parser.parse_args()
    main(options.count, options.storage)
