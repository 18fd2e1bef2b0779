"""A fake WeCom group robot (群机器人 webhook) on 127.0.0.1 with the real one's checks and rate limit."""
from __future__ import annotations

import time
from collections import deque
from typing import Callable

from tests.fake_server import FakeServer, api_error, parse_json

ROBOT_PER_MINUTE = 20
ROBOT_MAX_BYTES = 4096


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
            return api_error(93000, "invalid webhook url")
        data = parse_json(body)
        if data is None:
            return api_error(40035, "invalid json")
        kind = data.get("msgtype")
        content = (data.get(kind) or {}).get("content") if kind in ("markdown", "text") else None
        if not isinstance(content, str):
            return api_error(40008, "invalid message type")
        if not content:
            return api_error(44004, "empty content")
        if len(content.encode("utf-8")) > ROBOT_MAX_BYTES:
            return api_error(40058, "markdown.content exceed max length 4096")
        return self._accept(content)

    def _accept(self, content: str) -> tuple[int, dict]:
        """45009 when `per_minute` messages were accepted in the last 60 s, else record it."""
        now = self.clock()
        while self._sent_at and self._sent_at[0] <= now - 60:
            self._sent_at.popleft()
        if len(self._sent_at) >= self.per_minute:
            return api_error(45009, "api freq out of limit")
        self._sent_at.append(now)
        self.messages.append(content)
        return api_error(0, "ok")
