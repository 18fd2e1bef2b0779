"""Downloading what customers send with media/get (bot.channels.media) against the fake APIs."""
from __future__ import annotations

import pytest
import requests

from bot.channels.media import MediaError, fetch
from bot.channels.wechat_api import CustomerService
from bot.channels.wecom_api import WeComPush
from bot.config import StorageConfig, WeChatConfig, WeComConfig
from bot.store import open_store

PNG = ("image/png", b"\x89PNG\r\n\x1a\n-screenshot")


@pytest.fixture
def clients(wechat, wecom, clock):
    """The Official Account's and the WeCom app's shared-token clients, on the fakes."""
    store = open_store(StorageConfig(url="sqlite://"))
    official = CustomerService(WeChatConfig(app_id=wechat.app_id, app_secret=wechat.secret,
                                            api_base_url=wechat.url), store.tokens, clock).client
    app = WeComPush(WeComConfig(corp_id=wecom.corp_id, secret=wecom.secret, agent_id=str(wecom.agent_id),
                                api_base_url=wecom.url), store.tokens, clock).client
    yield {"wechat": (official, wechat), "wecom": (app, wecom)}
    store.close()


@pytest.mark.parametrize("channel", ["wechat", "wecom"])
def test_an_image_is_downloaded(clients, channel):
    """The file and its type, with the channel's shared token."""
    client, fake = clients[channel]
    fake.media["M1"] = PNG
    assert fetch(client, requests.Session(), "M1", 5.0) == PNG


@pytest.mark.parametrize("channel", ["wechat", "wecom"])
def test_an_unknown_media_id_is_a_clear_error(clients, channel):
    """40007 (expired or unknown media) is an error naming the code, not a stored JSON body."""
    client, _ = clients[channel]
    with pytest.raises(MediaError, match="40007"):
        fetch(client, requests.Session(), "gone", 5.0)


def test_an_expired_token_is_refreshed_once(clients):
    """The shared token expired: one refresh, then the file."""
    client, fake = clients["wechat"]
    fake.media["M1"] = PNG
    client.access_token  # noqa: B018 - fetch and share a token first
    fake.expire_tokens()
    assert fetch(client, requests.Session(), "M1", 5.0) == PNG and fake.token_fetches == 2
