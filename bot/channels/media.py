"""Images customers send, downloaded with the media API (`GET /cgi-bin/media/get`) before their
PicUrl expires: the Official Account's and the WeCom app's, each with its shared access token.

A media file is binary with an image Content-Type; an error is JSON ({"errcode", "errmsg"}). A
rejected token is refreshed once (the shared-token client's refresh_token), as for sends.
"""
from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Callable

import requests

if TYPE_CHECKING:
    from bot.config import Config
    from bot.store.base import Store

log = logging.getLogger(__name__)

MAX_MEDIA_BYTES = 10 * 1024 * 1024  # WeChat's limit for an image (临时素材 image ≤ 10 MB)
TOKEN_CODES = frozenset({40001, 40014, 42001})  # invalid / malformed / expired access_token


class MediaError(Exception):
    """The media API refused or answered something that is not an image."""


def fetch(client, session: requests.Session, media_id: str, timeout: float) -> tuple[str, bytes]:
    """(content type, bytes) of one media file via `client` (a shared-token wechatpy client)."""
    token = client.access_token
    for attempt in (1, 2):
        res = session.get(client.API_BASE_URL + "media/get", timeout=timeout, stream=True,
                          params={"access_token": token, "media_id": media_id})
        content_type = res.headers.get("Content-Type", "").split(";")[0].strip().lower()
        body = _read(res)
        if content_type.startswith("image/"):
            return content_type, body
        code = _errcode(body)
        if code in TOKEN_CODES and attempt == 1:
            token = client.refresh_token(stale=token)
            continue
        raise MediaError(f"media/get answered {res.status_code} {content_type or '-'} (errcode {code})")
    raise AssertionError("unreachable")


def _read(res: requests.Response) -> bytes:
    """The body, refusing more than MAX_MEDIA_BYTES."""
    chunks, size = [], 0
    for chunk in res.iter_content(64 * 1024):
        size += len(chunk)
        if size > MAX_MEDIA_BYTES:
            raise MediaError(f"media larger than {MAX_MEDIA_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _errcode(body: bytes) -> int | None:
    """The errcode of a JSON error body, else None."""
    try:
        return int(json.loads(body.decode("utf-8")).get("errcode"))
    except (ValueError, AttributeError, TypeError):
        return None


def media_downloader(config: Config, store: Store) -> Callable[[str, str], tuple[str, bytes]]:
    """(channel, media_id) → (content type, bytes) for every channel with an API configured."""
    from bot.channels.wechat_api import CustomerService
    from bot.channels.wecom_api import WeComPush

    clients = {}
    if config.wechat.app_secret:
        clients["wechat"] = (CustomerService(config.wechat, store.tokens).client, config.wechat.http_timeout)
    wc = config.wecom
    if wc and wc.corp_id and wc.secret and wc.agent_id:
        clients["wecom"] = (WeComPush(wc, store.tokens).client, wc.http_timeout)
    session = requests.Session()

    def download(channel: str, media_id: str) -> tuple[str, bytes]:
        """Download from the API of the customer's channel."""
        if channel not in clients:
            raise LookupError(f"no media API for channel {channel!r}")
        client, timeout = clients[channel]
        return fetch(client, session, media_id, timeout)
    return download
