"""A fake WeCom self-built app API on 127.0.0.1: access tokens and app text messages."""
from __future__ import annotations

import time
from typing import Callable

from tests.fake_server import MediaFiles, TokenServer, api_error, parse_json

WECOM_USER = "ZhangSan"  # a WeCom member userid for tests


class FakeWeCom(MediaFiles, TokenServer):
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
        self.media: dict[str, tuple[str, bytes]] = {}  # media/get: files users sent
        super().__init__(token_ttl, clock)

    def route(self, method, path, query, body):
        """Token endpoint, app-message send or media/get."""
        if path == "/cgi-bin/media/get" and method == "GET":
            return self._media_get(query)
        if path == "/cgi-bin/gettoken" and method == "GET":
            return self._issue_token(query)
        if path == "/cgi-bin/message/send" and method == "POST":
            error = self._token_error(query.get("access_token"))
            return error or self._send(parse_json(body))
        return 404, {"errcode": 404, "errmsg": "not found"}

    def _issue_token(self, query: dict) -> tuple[int, dict]:
        """Check corpid and corpsecret; a still-valid token is answered again."""
        if query.get("corpid") != self.corp_id:
            return api_error(40013, "invalid corpid")
        if query.get("corpsecret") != self.secret:
            return api_error(40001, "invalid secret")
        now = self.clock()
        token = next((t for t, exp in self.tokens.items() if exp > now), None) or self._new_token(0)
        return 200, {"errcode": 0, "errmsg": "ok", "access_token": token,
                     "expires_in": int(self.tokens[token] - now)}

    def _send(self, data: dict | None) -> tuple[int, dict]:
        """Validate the JSON body and the recipient (one member); record the message."""
        if data is None:
            return api_error(40035, "invalid json")
        if data.get("agentid") != self.agent_id:
            return api_error(40056, "invalid agentid")
        text = data.get("text")
        if data.get("msgtype") != "text" or not isinstance(text, dict):
            return api_error(40008, "invalid message type")
        if not isinstance(text.get("content"), str) or not text["content"]:
            return api_error(44004, "empty content")
        user = str(data.get("touser") or "")
        if user not in self.scope:
            return 200, {"errcode": 81013, "errmsg": "user & party & tag all invalid", "invaliduser": user}
        self.messages.append((user, text["content"]))
        return api_error(0, "ok")
