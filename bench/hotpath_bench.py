"""Where one message's milliseconds go: protocol, matching, dialogue, templates, store, HTTP stack.

Run: python bench/hotpath_bench.py [N] [--storage sqlite|memory|URL]
Sends N messages of the webhook benchmark's mix (bench/messages.py) through the real app
(`create_app`, safe mode, a SQLite file unless told otherwise) with Flask's test client, in one
process, one at a time, and times each part exclusively (a part's time excludes the parts it
calls): the WeChat protocol (verify, decrypt, parse, encrypt the reply), understanding (the
matcher), templates (every kb.render), the dialogue's own logic, the store (a turn's read and its
write transaction, the replay check of the timestamp+nonce included), and the rest (Flask, WSGI, the service's glue). Prints ms per message.
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
from tests.e2e_helpers import Account  # noqa: E402

PARTS = ("protocol", "understanding", "templates", "dialogue", "store", "rest")


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


def main(count: int, storage: str) -> None:
    """Send `count` messages; print the exclusive ms per message of each part."""
    account = Account(app_id="wxbench0000000001")
    with tempfile.TemporaryDirectory() as tmp:
        app = build_app(Path(tmp), account, storage)
        path = Path(tmp) / "requests.txt"
        write_requests(path, account, count + 200, run_id=1, seed=3)
        lines = path.read_text(encoding="utf-8").splitlines()
        client = app.test_client()
        for line in lines[:200]:  # warm-up: caches, connections, first compilations
            target, body = line.split("\t", 1)
            client.post(target, data=body, content_type="text/xml")
        clock = Clock()
        instrument(app, clock)
        start = time.perf_counter()
        for line in lines[200:]:
            target, body = line.split("\t", 1)
            res = clock.wrap("rest", lambda: client.post(target, data=body, content_type="text/xml"))()
            assert res.status_code == 200, res.status_code
        total = time.perf_counter() - start
    print(f"{count} messages, {storage}, one at a time in one process: {total / count * 1000:.3f} ms per message")
    for part in PARTS:
        ms = clock.totals[part] / count * 1000
        print(f"  {part:<14} {ms:7.3f} ms  {clock.totals[part] / total * 100:5.1f} %")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=2000)
    parser.add_argument("--storage", default="sqlite", help="sqlite (a file), memory, or a database URL")
    options = parser.parse_args()
    main(options.count, options.storage)
