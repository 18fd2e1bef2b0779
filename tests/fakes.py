"""Fake WeChat API, WeCom app API and WeCom group-robot servers on 127.0.0.1 that check what the
real ones check.

Each records every call, can fail on demand (`fail_next`), and can go down (HTTP 500 or
connection refused) and come back on the same port.
"""
from __future__ import annotations

import itertools
import json
import threading
import time
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlsplit

import pytest

WINDOW_SECONDS = 48 * 3600
WINDOW_QUOTA = 5
TOKEN_GRACE = 300  # WeChat keeps the previous token valid for 5 minutes after a refresh
ROBOT_PER_MINUTE = 20
ROBOT_MAX_BYTES = 4096
OPENID = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"  # a well-formed openid for tests
WECOM_USER = "ZhangSan"  # a WeCom member userid for tests


def _err(code: int, message: str) -> tuple[int, dict]:
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
        data = json.dumps(answer, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

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


class _TokenServer(FakeServer):
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
            return _err(*self.INVALID_TOKEN)
        if self.tokens[token] <= self.clock():
            return _err(42001, "access_token expired")
        return None


class FakeWeChat(_TokenServer):
    """The Official Account API: /cgi-bin/token and /cgi-bin/message/custom/send.

    A customer-service message needs a user message within 48 h (`user_message`) and at
    most `quota` (5) messages per such window; `unverified = True` answers 48001 for every send.
    """

    def __init__(self, app_id: str = "wx-test-app", secret: str = "s3cret", token_ttl: int = 7200,
                 clock: Callable[[], float] = time.time):
        """Serve the given credentials; tokens live `token_ttl` seconds."""
        self.app_id, self.secret = app_id, secret
        self.windows: dict[str, float] = {}  # openid -> last user message
        self.quota_used: dict[str, int] = defaultdict(int)
        self.quota = WINDOW_QUOTA
        self.unverified = False
        super().__init__(token_ttl, clock)

    def user_message(self, openid: str) -> None:
        """The user wrote to the account: open a fresh 48 h window with a fresh quota."""
        with self.lock:
            self.windows[openid] = self.clock()
            self.quota_used[openid] = 0

    def route(self, method, path, query, body):
        """Token endpoint or customer-service send."""
        if path == "/cgi-bin/token" and method == "GET":
            return self._issue_token(query)
        if path == "/cgi-bin/message/custom/send" and method == "POST":
            return self._custom_send(query, body)
        return 404, {"errcode": 404, "errmsg": "not found"}

    def _issue_token(self, query: dict) -> tuple[int, dict]:
        """Check grant type and credentials; a new token leaves older ones 5 minutes to live."""
        if query.get("grant_type") != "client_credential":
            return _err(40002, "invalid grant_type")
        if query.get("appid") != self.app_id:
            return _err(40013, "invalid appid")
        if query.get("secret") != self.secret:
            return _err(40125, "invalid appsecret")
        return 200, {"access_token": self._new_token(TOKEN_GRACE), "expires_in": self.token_ttl}

    def _custom_send(self, query: dict, body: bytes) -> tuple[int, dict]:
        """Validate token, JSON shape, the 48 h window and quota; record the message."""
        error = self._token_error(query.get("access_token"))
        if error:
            return error
        data = parse_json(body)
        text = (data or {}).get("text")
        if not data or data.get("msgtype") != "text" or not isinstance(text, dict):
            return _err(40008, "invalid message type")
        if not isinstance(text.get("content"), str) or not text["content"]:
            return _err(44003, "empty news data")
        return self._deliver(str(data.get("touser", "")), text["content"])

    def _deliver(self, openid: str, content: str) -> tuple[int, dict]:
        """Apply the per-user rules, then record the message."""
        if self.unverified:
            return _err(48001, "api unauthorized")
        opened = self.windows.get(openid)
        if opened is None or self.clock() - opened > WINDOW_SECONDS:
            return _err(45015, "response out of time limit or subscription is canceled")
        if self.quota_used[openid] >= self.quota:
            return _err(45047, "out of response count limit")
        self.quota_used[openid] += 1
        self.messages.append((openid, content))
        return _err(0, "ok")


class FakeWeCom(_TokenServer):
    """A WeCom self-built app's API: /cgi-bin/gettoken and /cgi-bin/message/send (text).

    While a token is valid gettoken answers the same one (with the seconds it has left), as
    WeCom does. Only members in `scope` (the app's visible range) can receive: a message to
    anyone else gets 81013, like the real API.
    """

    INVALID_TOKEN = (40014, "invalid access_token")
    TOKEN_PREFIX = "WECOM-TOKEN-"

    def __init__(self, corp_id: str = "ww-test-corp", secret: str = "wecom-s3cret",
                 agent_id: int = 1000002, token_ttl: int = 7200, clock: Callable[[], float] = time.time):
        """Serve one app of one corp; `scope` starts empty."""
        self.corp_id, self.secret, self.agent_id = corp_id, secret, agent_id
        self.scope: set[str] = set()
        super().__init__(token_ttl, clock)

    def route(self, method, path, query, body):
        """Token endpoint or app-message send."""
        if path == "/cgi-bin/gettoken" and method == "GET":
            return self._issue_token(query)
        if path == "/cgi-bin/message/send" and method == "POST":
            error = self._token_error(query.get("access_token"))
            return error or self._send(parse_json(body))
        return 404, {"errcode": 404, "errmsg": "not found"}

    def _issue_token(self, query: dict) -> tuple[int, dict]:
        """Check corpid and corpsecret; a still-valid token is answered again."""
        if query.get("corpid") != self.corp_id:
            return _err(40013, "invalid corpid")
        if query.get("corpsecret") != self.secret:
            return _err(40001, "invalid secret")
        now = self.clock()
        token = next((t for t, exp in self.tokens.items() if exp > now), None) or self._new_token(0)
        return 200, {"errcode": 0, "errmsg": "ok", "access_token": token,
                     "expires_in": int(self.tokens[token] - now)}

    def _send(self, data: dict | None) -> tuple[int, dict]:
        """Validate the JSON body and the recipient (one member); record the message."""
        if data is None:
            return _err(40035, "invalid json")
        if data.get("agentid") != self.agent_id:
            return _err(40056, "invalid agentid")
        text = data.get("text")
        if data.get("msgtype") != "text" or not isinstance(text, dict):
            return _err(40008, "invalid message type")
        if not isinstance(text.get("content"), str) or not text["content"]:
            return _err(44004, "empty content")
        user = str(data.get("touser") or "")
        if user not in self.scope:
            return 200, {"errcode": 81013, "errmsg": "user & party & tag all invalid", "invaliduser": user}
        self.messages.append((user, text["content"]))
        return _err(0, "ok")


class FakeRobot(FakeServer):
    """The WeCom group robot: POST /cgi-bin/webhook/send?key=… with a markdown or text message."""

    def __init__(self, key: str = "robot-key-0001", per_minute: int = ROBOT_PER_MINUTE,
                 clock: Callable[[], float] = time.time):
        """Accept messages for `key`, at most `per_minute` in any 60 s."""
        self.key = key
        self.per_minute = per_minute
        self.messages: list[str] = []  # accepted contents
        self.rejected: list[int] = []  # errcodes answered
        self._sent_at: deque[float] = deque()
        super().__init__(clock)

    @property
    def webhook_url(self) -> str:
        """The URL to configure as [ops] webhook_url."""
        return f"{self.url}/cgi-bin/webhook/send?key={self.key}"

    def route(self, method, path, query, body):
        """Validate key, JSON shape, content size and the rate limit; record the message."""
        if path != "/cgi-bin/webhook/send" or method != "POST":
            return 404, {"errcode": 404, "errmsg": "not found"}
        status, answer = self._check(query, body)
        if answer["errcode"]:
            self.rejected.append(answer["errcode"])
        return status, answer

    def _check(self, query: dict, body: bytes) -> tuple[int, dict]:
        """The checks of the real robot, in its order."""
        if query.get("key") != self.key:
            return _err(93000, "invalid webhook url")
        data = parse_json(body)
        if data is None:
            return _err(40035, "invalid json")
        kind = data.get("msgtype")
        content = (data.get(kind) or {}).get("content") if kind in ("markdown", "text") else None
        if not isinstance(content, str):
            return _err(40008, "invalid message type")
        if not content:
            return _err(44004, "empty content")
        if len(content.encode("utf-8")) > ROBOT_MAX_BYTES:
            return _err(40058, "markdown.content exceed max length 4096")
        return self._accept(content)

    def _accept(self, content: str) -> tuple[int, dict]:
        """45009 when `per_minute` messages were accepted in the last 60 s, else record it."""
        now = self.clock()
        while self._sent_at and self._sent_at[0] <= now - 60:
            self._sent_at.popleft()
        if len(self._sent_at) >= self.per_minute:
            return _err(45009, "api freq out of limit")
        self._sent_at.append(now)
        self.messages.append(content)
        return _err(0, "ok")


class FakeClock:
    """A settable clock for code that takes `clock=`; starts at a fixed epoch time."""

    def __init__(self, now: float = 1_800_000_000.0):
        """Start at `now`."""
        self.now = now

    def __call__(self) -> float:
        """The current fake time."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    """Fake time to share between the code under test and the fakes."""
    return FakeClock()


@pytest.fixture
def wechat(clock):
    """A fake WeChat API on the fake clock where OPENID wrote recently."""
    with FakeWeChat(clock=clock) as fake:
        fake.user_message(OPENID)
        yield fake


@pytest.fixture
def wecom(clock):
    """A fake WeCom app API on the fake clock whose visible range holds WECOM_USER."""
    with FakeWeCom(clock=clock) as fake:
        fake.scope.add(WECOM_USER)
        yield fake


@pytest.fixture
def robot(clock):
    """A fake WeCom group robot on the fake clock."""
    with FakeRobot(clock=clock) as fake:
        yield fake
