"""WeCom group-robot webhook client: markdown messages to the ops group."""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

import requests

from bot.outbox import DeliveryError, transport_error

log = logging.getLogger(__name__)

MAX_MARKDOWN_BYTES = 4096
TRUNCATED_NOTE = "…（已截断，见控制台）"
RATE_LIMITED = 45009  # WeCom: api freq out of limit (20 msgs/min per robot)
TAIL_SHARE = 4  # the kept last line (console link) may use at most 1/4 of the budget


def _utf8_len(text: str) -> int:
    """Length of `text` in UTF-8 bytes."""
    return len(text.encode("utf-8"))


def _head_lines(lines: list[str], budget: int) -> list[str]:
    """The longest prefix of `lines` whose joined UTF-8 size (with newlines) fits `budget`."""
    kept: list[str] = []
    size = 0
    for line in lines:
        size += _utf8_len(line) + 1
        if size > budget:
            break
        kept.append(line)
    if not kept and lines:  # one huge first line: cut it at a character boundary
        kept = [lines[0].encode("utf-8")[: max(budget - 1, 0)].decode("utf-8", "ignore")]
    return kept


def fit_markdown(text: str, limit: int = MAX_MARKDOWN_BYTES) -> str:
    """Shorten `text` to `limit` UTF-8 bytes at a line boundary, adding a truncation note.

    The last non-empty line (the console link) is kept when it is short enough.
    """
    if _utf8_len(text) <= limit:
        return text
    lines = text.rstrip("\n").split("\n")
    budget = limit - _utf8_len(TRUNCATED_NOTE) - 1
    tail = lines[-1] if len(lines) > 1 and _utf8_len(lines[-1]) * TAIL_SHARE <= budget else ""
    if tail:
        lines, budget = lines[:-1], budget - _utf8_len(tail) - 1
    kept = _head_lines(lines, budget) + [TRUNCATED_NOTE] + ([tail] if tail else [])
    return "\n".join(kept)


def redact_webhook(url: str) -> str:
    """The webhook URL without its query string (the key is a secret)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class RobotClient:
    """Posts markdown to one WeCom group-robot webhook, with a timeout on every call."""

    def __init__(self, webhook_url: str, timeout: float = 5.0):
        """Remember the webhook (with its key) and open a pooled HTTP session."""
        self.webhook_url = webhook_url
        self.timeout = timeout
        self._http = requests.Session()

    def __repr__(self) -> str:
        """Never show the webhook key."""
        return f"RobotClient({redact_webhook(self.webhook_url)!r})"

    def send_markdown(self, text: str) -> None:
        """Send one markdown message (truncated to 4096 bytes); raise DeliveryError on failure."""
        body = {"msgtype": "markdown", "markdown": {"content": fit_markdown(text)}}
        try:
            res = self._http.post(self.webhook_url, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise transport_error(exc, "robot") from None
        if res.status_code >= 400:
            raise DeliveryError(True, None, f"robot HTTP {res.status_code}")
        _check_result(res)


def _check_result(res: requests.Response) -> None:
    """Raise DeliveryError unless the robot answered errcode 0."""
    try:
        result = res.json()
        code = int(result.get("errcode", -1))
    except (ValueError, TypeError, AttributeError):
        raise DeliveryError(True, None, "robot answered something that is not JSON") from None
    if code == 0:
        return
    message = str(result.get("errmsg", ""))[:200]
    # -1 is WeCom's "system busy"; anything else (bad key, bad content) will not heal by retrying.
    raise DeliveryError(code in (RATE_LIMITED, -1), code, message)
