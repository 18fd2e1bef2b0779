"""The HTTP machinery the fake Tencent APIs share: a threaded server on 127.0.0.1 with call
recording, failure injection (`fail_next`) and outages (HTTP 500 or connection refused, then
back on the same port), and the access-token rules of the WeChat-family APIs.
"""
from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Raw:
    """A non-JSON answer (a media file), as media/get sends it."""

    content_type: str
    body: bytes


def api_error(code: int, message: str) -> tuple[int, dict]:
    """A WeChat-style error body with HTTP 200 (errcode 0 is success)."""
    return 200, {"errcode": code, "errmsg": message}


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the owning fake and writes its JSON answer."""

    def do_POST(self):
        """Ask the fake for (status, JSON) and send it; GET is the same without a body."""
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        status, answer = self.server.fake.answer(self.command, parts.path, query, body)
        time.sleep(self.server.fake.delay)  # a slow remote: it has taken the request, the answer is late
        if isinstance(answer, Raw):
            data, content_type = answer.body, answer.content_type
        else:
            data, content_type = json.dumps(answer, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8"
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (timeout)
            self.close_connection = True

    do_GET = do_POST

    def log_message(self, format, *args):
        """Keep test output quiet."""


class FakeServer:
    """A threaded HTTP server on 127.0.0.1 with call recording, failure injection and outages."""

    def __init__(self, clock: Callable[[], float] = time.time):
        """Start serving on a free loopback port; `clock` drives time-based rules."""
        self.clock = clock
        self.calls: list[dict] = []
        self.failures: deque[tuple[str, int, dict]] = deque()
        self.mode = "up"  # up | 500
        self.delay = 0.0  # seconds every answer waits after the request was handled
        self.lock = threading.RLock()
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._start()

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:54321."""
        return f"http://127.0.0.1:{self.port}"

    def _start(self) -> None:
        """Bind (the same port after the first time) and serve in a daemon thread."""
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        """Stop serving and release the port (`up` may reopen it)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def down(self, how: str = "500") -> None:
        """Go down: "500" answers HTTP 500, "refused" closes the port."""
        if how == "refused":
            self.close()
        else:
            self.mode = "500"

    def up(self) -> None:
        """Come back on the same port."""
        self.mode = "up"
        if self._server is None:
            self._start()

    def __enter__(self):
        """Use as a context manager."""
        return self

    def __exit__(self, *exc):
        """Close on exit."""
        self.close()

    def fail_next(self, path: str, errcode: int | None = None, status: int = 200, times: int = 1) -> None:
        """The next `times` calls to `path` answer `errcode` (or just HTTP `status`)."""
        body = {"errcode": errcode, "errmsg": "injected failure"} if errcode is not None else {}
        self.failures.extend([(path, status, body)] * times)

    def calls_to(self, path: str) -> int:
        """How many requests reached `path` so far."""
        with self.lock:
            return sum(call["path"] == path for call in self.calls)

    def answer(self, method: str, path: str, query: dict, body: bytes) -> tuple[int, dict]:
        """Record the call, apply outages and injected failures, then route it."""
        with self.lock:
            self.calls.append({"method": method, "path": path, "query": query, "body": body})
            if self.mode == "500":
                return 500, {"error": "down"}
            for i, (fail_path, status, answer) in enumerate(self.failures):
                if fail_path == path:
                    del self.failures[i]
                    return status, answer
            return self.route(method, path, query, body)

    def route(self, method: str, path: str, query: dict, body: bytes) -> tuple[int, dict]:
        """Answer one request (subclasses)."""
        raise NotImplementedError


def parse_json(body: bytes) -> dict | None:
    """The JSON object in `body`, or None."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class TokenServer(FakeServer):
    """Issues access tokens that live `token_ttl` seconds and checks them on every API call."""

    INVALID_TOKEN = (40001, "invalid credential, access_token is invalid or not latest")
    TOKEN_PREFIX = "TOKEN-"

    def __init__(self, token_ttl: int, clock: Callable[[], float]):
        """No token issued yet."""
        self.token_ttl = token_ttl
        self.tokens: dict[str, float] = {}  # token -> expires_at
        self.token_fetches = 0  # tokens issued
        self.messages: list[tuple[str, str]] = []  # (user, content) delivered
        self._serial = itertools.count(1)
        super().__init__(clock)

    def expire_tokens(self) -> None:
        """Every issued token expires now (the next use gets 42001)."""
        with self.lock:
            self.tokens = {token: 0.0 for token in self.tokens}

    def _new_token(self, grace: float) -> str:
        """Issue a fresh token; older ones stay valid at most `grace` seconds more."""
        now = self.clock()
        self.tokens = {t: min(exp, now + grace) for t, exp in self.tokens.items()}
        token = f"{self.TOKEN_PREFIX}{next(self._serial)}"
        self.tokens[token] = now + self.token_ttl
        self.token_fetches += 1
        return token

    def _token_error(self, token: str | None) -> tuple[int, dict] | None:
        """INVALID_TOKEN or 42001 unless `token` is currently valid."""
        if token not in self.tokens:
            return api_error(*self.INVALID_TOKEN)
        if self.tokens[token] <= self.clock():
            return api_error(42001, "access_token expired")
        return None


class MediaFiles:
    """media/get: files users sent (`media[media_id] = (content type, bytes)`), token checked."""

    def _media_get(self, query: dict) -> tuple[int, dict | Raw]:
        """The file, or 40007 invalid media_id, as WeChat and WeCom answer."""
        error = self._token_error(query.get("access_token"))
        if error:
            return error
        found = self.media.get(query.get("media_id", ""))
        if found is None:
            return api_error(40007, "invalid media_id")
        return 200, Raw(*found)
