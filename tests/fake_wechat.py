"""A fake WeChat Official Account API on 127.0.0.1: access tokens and customer-service messages."""
from __future__ import annotations

import time
from collections import defaultdict
from typing import Callable

from tests.fake_server import MediaFiles, TokenServer, api_error, parse_json

WINDOW_SECONDS = 48 * 3600
WINDOW_QUOTA = 5
TOKEN_GRACE = 300  # WeChat keeps the previous token valid for 5 minutes after a refresh
OPENID = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"  # a well-formed openid for tests


class FakeWeChat(MediaFiles, TokenServer):
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
        self.media: dict[str, tuple[str, bytes]] = {}  # media/get: files users sent
        super().__init__(token_ttl, clock)

    def user_message(self, openid: str) -> None:
        """The user wrote to the account: open a fresh 48 h window with a fresh quota."""
        with self.lock:
            self.windows[openid] = self.clock()
            self.quota_used[openid] = 0

    def route(self, method, path, query, body):
        """Token endpoint, customer-service send or media/get."""
        if path == "/cgi-bin/media/get" and method == "GET":
            return self._media_get(query)
        if path == "/cgi-bin/token" and method == "GET":
            return self._issue_token(query)
        if path == "/cgi-bin/message/custom/send" and method == "POST":
            return self._custom_send(query, body)
        return 404, {"errcode": 404, "errmsg": "not found"}

    def _issue_token(self, query: dict) -> tuple[int, dict]:
        """Check grant type and credentials; a new token leaves older ones 5 minutes to live."""
        if query.get("grant_type") != "client_credential":
            return api_error(40002, "invalid grant_type")
        if query.get("appid") != self.app_id:
            return api_error(40013, "invalid appid")
        if query.get("secret") != self.secret:
            return api_error(40125, "invalid appsecret")
        return 200, {"access_token": self._new_token(TOKEN_GRACE), "expires_in": self.token_ttl}

    def _custom_send(self, query: dict, body: bytes) -> tuple[int, dict]:
        """Validate token, JSON shape, the 48 h window and quota; record the message."""
        error = self._token_error(query.get("access_token"))
        if error:
            return error
        data = parse_json(body)
        text = (data or {}).get("text")
        if not data or data.get("msgtype") != "text" or not isinstance(text, dict):
            return api_error(40008, "invalid message type")
        if not isinstance(text.get("content"), str) or not text["content"]:
            return api_error(44003, "empty news data")
        return self._deliver(str(data.get("touser", "")), text["content"])

    def _deliver(self, openid: str, content: str) -> tuple[int, dict]:
        """Apply the per-user rules, then record the message."""
        if self.unverified:
            return api_error(48001, "api unauthorized")
        opened = self.windows.get(openid)
        if opened is None or self.clock() - opened > WINDOW_SECONDS:
            return api_error(45015, "response out of time limit or subscription is canceled")
        if self.quota_used[openid] >= self.quota:
            return api_error(45047, "out of response count limit")
        self.quota_used[openid] += 1
        self.messages.append((openid, content))
        return api_error(0, "ok")
