"""WeChat Official Account API: customer-service messages with an access token shared by all workers."""
from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Callable

import requests
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.session import SessionStorage

from bot.config import WeChatConfig
from bot.outbox import DeliveryError, transport_error

if TYPE_CHECKING:
    from bot.store.base import Tokens

log = logging.getLogger(__name__)

REFRESH_EARLY = 300.0  # treat a token as expired 5 minutes before WeChat does
DEFAULT_TOKEN_TTL = 7200
HOLD_CODES = frozenset({45015, 45047, 48001})  # window closed, 48 h quota, API unauthorized
TOKEN_CODES = frozenset({40001, 40014, 42001})  # invalid / malformed / expired access_token
RETRY_CODES = frozenset({-1, 45009})  # system busy, API frequency limit

_FETCH_LOCKS: dict[str, threading.Lock] = {}
_FETCH_LOCKS_GUARD = threading.Lock()


def _fetch_lock(app_id: str) -> threading.Lock:
    """One lock per app id, so threads of one process fetch a token at most once at a time."""
    with _FETCH_LOCKS_GUARD:
        return _FETCH_LOCKS.setdefault(app_id, threading.Lock())


def mask(value: str) -> str:
    """First 4 + last 4 characters; enough to recognise an id, not to use it."""
    return value if len(value) <= 8 else f"{value[:4]}…{value[-4:]}"


class StoreTokenStorage(SessionStorage):
    """wechatpy SessionStorage over the store's Tokens; a token reads as gone `early` s before expiry."""

    def __init__(self, tokens: Tokens, clock: Callable[[], float] = time.time, early: float = REFRESH_EARLY):
        """Wrap `tokens`; `clock` gives epoch seconds."""
        self.tokens = tokens
        self.clock = clock
        self.early = early

    def get(self, key, default=None):
        """The token if it stays valid for at least `early` seconds, else `default`."""
        return self.tokens.get(key, self.clock() + self.early) or default

    def set(self, key, value, ttl=None):
        """Share the token with every worker until it expires."""
        if value:
            self.tokens.put(key, value, self.clock() + float(ttl or DEFAULT_TOKEN_TTL))

    def delete(self, key):
        """Invalidate the token for every worker."""
        self.tokens.put(key, "", 0.0)


class _Client(WeChatClient):
    """WeChatClient with a per-instance base URL, timeouts on token fetches and no blind retries."""

    def __init__(self, cfg: WeChatConfig, storage: StoreTokenStorage):
        """Point the client at cfg.api_base_url; wechatpy's own token retry loop is disabled."""
        super().__init__(cfg.app_id, cfg.app_secret, session=storage,
                         timeout=cfg.http_timeout, auto_retry=False)
        self.API_BASE_URL = cfg.api_base_url.rstrip("/") + "/cgi-bin/"

    @property
    def access_token(self):
        """The shared token, fetched once when missing or about to expire."""
        return self.session.get(self.access_token_key) or self.refresh_token(stale=None)

    def refresh_token(self, stale: str | None) -> str:
        """Fetch a new token unless another worker already replaced `stale` (or filled a gap)."""
        with _fetch_lock(self.appid):
            current = self.session.get(self.access_token_key)
            if current and current != stale:
                return current
            return self.fetch_access_token()["access_token"]

    def fetch_access_token(self):
        """GET /cgi-bin/token (with the timeout wechatpy omits) and share the result."""
        log.info("wechat: fetching access token for app %s", mask(self.appid))
        res = self._http.get(self.API_BASE_URL + "token", timeout=self.timeout, params={
            "grant_type": "client_credential", "appid": self.appid, "secret": self.secret})
        res.raise_for_status()
        result = res.json()
        if result.get("errcode") or not result.get("access_token"):
            raise WeChatClientException(result.get("errcode"), result.get("errmsg"), client=self)
        self.session.set(self.access_token_key, result["access_token"],
                         int(result.get("expires_in", DEFAULT_TOKEN_TTL)))
        return result


class CustomerService:
    """Sends customer-service (客服) text messages; errors become DeliveryError for the outbox.

    Another API of the family subclasses it and overrides only the hooks: CHANNEL (the name in
    logs and errors), SEND_PATH, _make_client, _body, _send_error and _token_error.
    """

    CHANNEL = "wechat"
    SEND_PATH = "message/custom/send"

    def __init__(self, cfg: WeChatConfig, tokens: Tokens, clock: Callable[[], float] = time.time):
        """One wechatpy client whose access token lives in `tokens`, shared with other workers."""
        self.cfg = cfg
        self.client = self._make_client(cfg, StoreTokenStorage(tokens, clock))

    def send_text(self, to: str, text: str) -> None:
        """Send `text` to the user `to`; on a rejected token refresh it once and retry."""
        token = self._token()
        try:
            self._post(to, text, token)
            return
        except _TokenRejected:
            log.info("%s: access token rejected, refreshing once", self.CHANNEL)
        try:
            self._post(to, text, self._token(stale=token))
        except _TokenRejected as exc:
            raise DeliveryError(True, exc.code, "access token rejected after a refresh") from None

    def _make_client(self, cfg: WeChatConfig, storage: StoreTokenStorage) -> WeChatClient:
        """The wechatpy client for this API (hook)."""
        return _Client(cfg, storage)

    def _body(self, to: str, text: str) -> dict:
        """The JSON of one text message to `to` (hook)."""
        return {"touser": to, "msgtype": "text", "text": {"content": text}}

    def _send_error(self, exc: WeChatClientException) -> DeliveryError:
        """What a refused send means for the outbox: retry, hold or give up (hook)."""
        return _as_delivery_error(exc, "send")

    def _token_error(self, exc: WeChatClientException) -> DeliveryError:
        """What a refused token fetch means for the outbox (hook)."""
        return _as_delivery_error(exc, "token")

    def _token(self, stale: str | None = None) -> str:
        """The current token (a fresh one when `stale` was rejected); failures are DeliveryErrors."""
        try:
            return self.client.refresh_token(stale) if stale else self.client.access_token
        except WeChatClientException as exc:
            raise self._token_error(exc) from None
        except (requests.RequestException, ValueError) as exc:
            raise DeliveryError(True, None, f"token fetch failed: {type(exc).__name__}") from None

    def _post(self, to: str, text: str, token: str) -> None:
        """One POST to SEND_PATH with an explicit token; a rejected token raises _TokenRejected."""
        try:
            result = self.client.post(self.SEND_PATH, data=self._body(to, text), params={"access_token": token})
        except WeChatClientException as exc:
            if exc.errcode in TOKEN_CODES:
                raise _TokenRejected(exc.errcode) from None
            raise self._send_error(exc) from None
        except requests.RequestException as exc:
            raise transport_error(exc, self.CHANNEL) from None
        if not isinstance(result, dict):
            raise DeliveryError(True, None, f"{self.CHANNEL} answered something that is not JSON")


class _TokenRejected(Exception):
    """WeChat said the access token is invalid or expired."""

    def __init__(self, code: int):
        """Keep WeChat's error code."""
        super().__init__(code)
        self.code = code


def _as_delivery_error(exc: WeChatClientException, what: str) -> DeliveryError:
    """Map a WeChat error code to the outbox's retry / hold / give-up decision."""
    code = exc.errcode
    message = f"{what}: {exc.errmsg}"
    if code in HOLD_CODES:
        return DeliveryError(False, code, message, hold=True)
    if code is None or code in RETRY_CODES or code in TOKEN_CODES:
        return DeliveryError(True, code, message)
    return DeliveryError(False, code, message)
