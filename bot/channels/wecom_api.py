"""WeCom app messages (应用消息): push follow-ups to members, access token shared by all workers.

The shared-token machinery is the Official Account's (bot.channels.wechat_api): the same
StoreTokenStorage, the same one-fetch-at-a-time refresh and the same send → refresh once →
resend flow. Only the API (wechatpy.enterprise, /cgi-bin/gettoken, /cgi-bin/message/send)
and the meaning of WeCom's error codes differ.
"""
from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Callable

import requests
from wechatpy.enterprise import WeChatClient as WeComClient
from wechatpy.exceptions import WeChatClientException

from bot.channels.wechat_api import CustomerService, StoreTokenStorage, _Client, mask
from bot.config import ConfigError, WeComConfig
from bot.outbox import DeliveryError

if TYPE_CHECKING:
    from bot.store.base import Tokens

log = logging.getLogger(__name__)

AGENT_ID = re.compile(r"[0-9]{1,10}")
HOLD_CODES = frozenset({81013})  # user & party & tag all invalid: not in the app's visible range
RETRY_CODES = frozenset({-1, 45009, 45033})  # system busy, API frequency limit, too many concurrent calls
CREDENTIAL_CODES = frozenset({40001, 40013, 40091})  # gettoken: wrong secret, corp id, secret format


class _TimeoutSession(requests.Session):
    """A requests session that gives every call a timeout, also those wechatpy makes without one."""

    def __init__(self, timeout: float):
        """Use `timeout` seconds wherever the caller gave none."""
        super().__init__()
        self.timeout = timeout

    def request(self, method, url, *args, **kwargs):
        """requests.Session.request with the default timeout filled in."""
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().request(method, url, *args, **kwargs)


class _WeComClient(WeComClient):
    """wechatpy's WeCom client: per-instance base URL, its own token name, timeouts, no blind retries."""

    access_token = _Client.access_token  # shared token, fetched once when missing or about to expire
    refresh_token = _Client.refresh_token  # replace a rejected token unless another worker already did

    def __init__(self, cfg: WeComConfig, storage: StoreTokenStorage, timeout: float):
        """Point the client at cfg.api_base_url; wechatpy's own token retry loop is disabled."""
        super().__init__(cfg.corp_id, cfg.secret, session=storage, timeout=timeout, auto_retry=False)
        self.agent_id = cfg.agent_id
        self.API_BASE_URL = cfg.api_base_url.rstrip("/") + "/cgi-bin/"
        self._http = _TimeoutSession(timeout)

    @property
    def access_token_key(self) -> str:
        """One token per app, named apart from the Official Account's and without a piece of the secret."""
        return f"wecom_{self.corp_id}_{self.agent_id}_access_token"

    def fetch_access_token(self):
        """GET /cgi-bin/gettoken?corpid&corpsecret (with the timeout) and share the result."""
        log.info("wecom: fetching access token for corp %s app %s", mask(self.corp_id), self.agent_id)
        url = self.API_BASE_URL + "gettoken"
        try:
            return self._fetch_access_token(url, {"corpid": self.corp_id, "corpsecret": self.secret})
        except KeyError as exc:  # errcode 0 without a token, or an error without errmsg
            raise ValueError(f"gettoken answer lacks {exc}") from None


class WeComPush(CustomerService):
    """Sends WeCom app text messages to members; errors become DeliveryError for the outbox.

    A member outside the app's visible range (81013) is a hold: the text goes out with the
    passive reply to their next message instead.
    """

    CHANNEL = "wecom"
    SEND_PATH = "message/send"

    def __init__(self, cfg: WeComConfig, tokens: Tokens, clock: Callable[[], float] = time.time):
        """One wechatpy WeCom client whose access token lives in `tokens`; AgentId checked first."""
        if not AGENT_ID.fullmatch(cfg.agent_id):
            raise ConfigError(f"[wecom] agent_id must be the app's numeric AgentId, got {cfg.agent_id!r}")
        self.agent_id = int(cfg.agent_id)
        super().__init__(cfg, tokens, clock)

    def _make_client(self, cfg: WeComConfig, storage: StoreTokenStorage) -> WeComClient:
        """wechatpy's WeCom client with the shared token and the configured timeout."""
        return _WeComClient(cfg, storage, cfg.http_timeout)

    def _body(self, userid: str, text: str) -> dict:
        """A text app message from this app to one member."""
        return {"touser": userid, "msgtype": "text", "agentid": self.agent_id, "text": {"content": text}}

    def _send_error(self, exc: WeChatClientException) -> DeliveryError:
        """Not in the app's visible range holds; busy and rate limits retry; anything else gives up."""
        code, message = exc.errcode, f"send: {exc.errmsg}"
        if code in HOLD_CODES:
            return DeliveryError(False, code, message, hold=True)
        return DeliveryError(code is None or code in RETRY_CODES, code, message)

    def _token_error(self, exc: WeChatClientException) -> DeliveryError:
        """A corp id or secret WeCom refuses is a permanent failure, not an outage."""
        error = super()._token_error(exc)
        if exc.errcode in CREDENTIAL_CODES:
            return DeliveryError(False, error.code, error.message)
        return error
