"""The two push clients (公众号 customer service, WeCom app) pointed at their fakes, and what
differs between them, so a scenario both share is one test parametrized over `CASES`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import pytest
from wechatpy import WeChatClient
from wechatpy.enterprise import WeChatClient as WeComClient

from bot.outbox import DeliveryError
from bot.channels.wechat_api import CustomerService
from bot.channels.wecom_api import WeComPush
from bot.config import WeChatConfig, WeComConfig
from tests.fake_server import TokenServer
from tests.fakes import OPENID, WECOM_USER, FakeWeChat, FakeWeCom


def wechat_config(fake: FakeWeChat, **change) -> WeChatConfig:
    """The [wechat] section of the account `fake` serves, with `change` applied."""
    return replace(WeChatConfig(app_id=fake.app_id, app_secret=fake.secret, api_base_url=fake.url), **change)


def wecom_config(fake: FakeWeCom, **change) -> WeComConfig:
    """The [wecom] section of the app `fake` serves, with `change` applied."""
    cfg = WeComConfig(corp_id=fake.corp_id, agent_id=str(fake.agent_id), secret=fake.secret,
                      api_base_url=fake.url)
    return replace(cfg, **change)


def make_cs(fake: FakeWeChat, store, clock, **change) -> CustomerService:
    """A CustomerService pointed at `fake`."""
    return CustomerService(wechat_config(fake, **change), store.tokens, clock=clock)


def make_push(fake: FakeWeCom, store, clock, **change) -> WeComPush:
    """A WeComPush pointed at `fake`."""
    return WeComPush(wecom_config(fake, **change), store.tokens, clock=clock)


def refusal(client: CustomerService, user: str, fake: TokenServer) -> tuple[bool, bool, int | None]:
    """Send to `user` expecting a DeliveryError with nothing delivered: its (retryable, hold, code)."""
    with pytest.raises(DeliveryError) as caught:
        client.send_text(user, "您的工单已处理")
    assert fake.messages == []
    return caught.value.retryable, caught.value.hold, caught.value.code


@dataclass(frozen=True)
class ApiCase:
    """One push client, the fake API it talks to, and the names and codes that differ."""

    name: str  # the channel, as the client's log lines start
    fake_class: type[TokenServer]
    welcome: Callable[[TokenServer], None]  # make `user` reachable on a fresh fake
    connect: Callable[..., CustomerService]  # (fake, store, clock, **config changes) -> client
    user: str  # a recipient the welcomed fake accepts
    other: dict  # the identity of a second account / app
    send_path: str
    token_path: str
    bad_token: int  # what the API answers for a token it never issued
    library: type  # wechatpy's client class, whose default base URL must stay untouched
    library_url: str

    def serve(self, clock, **identity) -> TokenServer:
        """A running fake on `clock` where `user` can receive messages."""
        fake = self.fake_class(clock=clock, **identity)
        self.welcome(fake)
        return fake


WECHAT = ApiCase("wechat", FakeWeChat, lambda fake: fake.user_message(OPENID), make_cs, OPENID,
                 {"app_id": "wx-other"}, "/cgi-bin/message/custom/send", "/cgi-bin/token", 40001,
                 WeChatClient, "https://api.weixin.qq.com/cgi-bin/")
WECOM = ApiCase("wecom", FakeWeCom, lambda fake: fake.scope.add(WECOM_USER), make_push, WECOM_USER,
                {"corp_id": "ww-other"}, "/cgi-bin/message/send", "/cgi-bin/gettoken", 40014,
                WeComClient, "https://qyapi.weixin.qq.com/cgi-bin/")
CASES = [WECHAT, WECOM]
