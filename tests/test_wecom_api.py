"""WeCom app messages through wechatpy.enterprise against the fake WeCom API on 127.0.0.1."""
from __future__ import annotations

import logging
import socket
from dataclasses import replace

import pytest
from wechatpy.enterprise import WeChatClient as WeComClient

from bot.channels.robot import DeliveryError
from bot.channels.wechat_api import CustomerService
from bot.channels.wecom_api import WeComPush
from bot.config import ConfigError, WeChatConfig, WeComConfig
from bot.store.sql import SqlStore
from tests.fakes import OPENID, WECOM_USER, FakeWeChat, FakeWeCom

SEND = "/cgi-bin/message/send"
GETTOKEN = "/cgi-bin/gettoken"


@pytest.fixture
def store(tmp_path):
    """A real store on a temporary SQLite file."""
    store = SqlStore(f"sqlite:///{tmp_path}/bot.db")
    yield store
    store.close()


def wecom_config(fake: FakeWeCom, **change) -> WeComConfig:
    """The [wecom] section of an app served by `fake`."""
    cfg = WeComConfig(corp_id=fake.corp_id, agent_id=str(fake.agent_id), secret=fake.secret,
                      api_base_url=fake.url)
    return replace(cfg, **change)


def make_push(fake: FakeWeCom, store, clock, **change) -> WeComPush:
    """A WeComPush pointed at `fake`."""
    return WeComPush(wecom_config(fake, **change), store, clock=clock)


def count(fake, path: str) -> int:
    """How many calls `fake` received on `path`."""
    return sum(call["path"] == path for call in fake.calls)


def test_send_text_reaches_the_member(wecom, store, clock):
    """A text app message arrives at the member with one token fetch."""
    make_push(wecom, store, clock).send_text(WECOM_USER, "您的工单 T000001 已处理：请重新登录 → 数电配置")
    assert wecom.messages == [(WECOM_USER, "您的工单 T000001 已处理：请重新登录 → 数电配置")]
    assert count(wecom, GETTOKEN) == 1


def test_token_is_shared_by_workers_through_the_store(wecom, store, clock):
    """Two workers over one store fetch the WeCom access token once between them."""
    first, second = make_push(wecom, store, clock), make_push(wecom, store, clock)
    for push, text in ((first, "一"), (second, "二"), (first, "三")):
        push.send_text(WECOM_USER, text)
    assert [text for _, text in wecom.messages] == ["一", "二", "三"]
    assert count(wecom, GETTOKEN) == 1


def test_wecom_and_official_account_tokens_do_not_mix(store, clock):
    """The 公众号 and the WeCom app share one store, each keeps its own token: no rejected send.

    Both use the same id (old WeCom CorpIDs start with "wx" too) so only the token's name tells them apart.
    """
    with FakeWeChat(app_id="wx5823bf96d3bd56c7", clock=clock) as wechat, \
            FakeWeCom(corp_id="wx5823bf96d3bd56c7", clock=clock) as wecom:
        wechat.user_message(OPENID)
        wecom.scope.add(WECOM_USER)
        cfg = WeChatConfig(app_id=wechat.app_id, app_secret=wechat.secret, api_base_url=wechat.url)
        customer, push = CustomerService(cfg, store, clock=clock), make_push(wecom, store, clock)
        for _ in range(2):
            customer.send_text(OPENID, "公众号")
            push.send_text(WECOM_USER, "企业微信")
    assert (len(wechat.messages), len(wecom.messages)) == (2, 2)
    assert (count(wechat, "/cgi-bin/token"), count(wecom, GETTOKEN)) == (1, 1)


@pytest.mark.parametrize("later, gettoken_calls, tokens_issued", [
    (0, 1, 1),
    (7200 - 301, 1, 1),  # still more than 5 minutes left: reuse
    (7200 - 299, 2, 1),  # less than 5 minutes left: ask again (WeCom answers the same token)
    (7200 + 1, 2, 2),  # expired: a new token
    (3 * 7200, 2, 2),
])
def test_token_is_refreshed_before_it_expires(wecom, store, clock, later, gettoken_calls, tokens_issued):
    """The token is reused while valid and asked for again near expiry; no send is ever rejected."""
    push = make_push(wecom, store, clock)
    push.send_text(WECOM_USER, "一")
    clock.advance(later)
    push.send_text(WECOM_USER, "二")
    assert (count(wecom, GETTOKEN), wecom.token_fetches) == (gettoken_calls, tokens_issued)
    assert len(wecom.messages) == 2 and count(wecom, SEND) == 2


@pytest.mark.parametrize("reject", [
    lambda fake: fake.expire_tokens(),  # 42001
    lambda fake: fake.fail_next(SEND, errcode=40014),
    lambda fake: fake.fail_next(SEND, errcode=42001),
])
def test_rejected_token_is_refreshed_once_and_the_send_retried(wecom, store, clock, reject):
    """When WeCom rejects the token the message still goes out, once, after one refresh."""
    push = make_push(wecom, store, clock)
    push.send_text(WECOM_USER, "一")
    reject(wecom)
    push.send_text(WECOM_USER, "二")
    assert [text for _, text in wecom.messages] == ["一", "二"]
    assert count(wecom, GETTOKEN) == 2


def test_token_rejected_twice_is_a_retryable_failure(wecom, store, clock):
    """A token rejected again right after a refresh is not retried in a loop."""
    wecom.fail_next(SEND, errcode=40014, times=3)
    with pytest.raises(DeliveryError) as caught:
        make_push(wecom, store, clock).send_text(WECOM_USER, "一")
    assert caught.value.retryable and not caught.value.hold
    assert (count(wecom, GETTOKEN), wecom.messages) == (2, [])


def test_member_outside_the_app_scope_is_held(wecom, store, clock):
    """81013 (not in the app's visible range) holds the text for the member's next passive reply."""
    with pytest.raises(DeliveryError) as caught:
        make_push(wecom, store, clock).send_text("LiSi", "您的工单已处理")
    assert (caught.value.hold, caught.value.retryable, caught.value.code) == (True, False, 81013)
    assert wecom.messages == []


@pytest.mark.parametrize("breakage, retryable, code", [
    (lambda fake: fake.down("500"), True, None),
    (lambda fake: fake.down("refused"), True, None),
    (lambda fake: fake.fail_next(SEND, errcode=-1), True, -1),
    (lambda fake: fake.fail_next(SEND, errcode=45009), True, 45009),
    (lambda fake: fake.fail_next(GETTOKEN, status=502), True, None),
    (lambda fake: setattr(fake, "agent_id", 1000003), False, 40056),
    (lambda fake: setattr(fake, "secret", "rotated"), False, 40001),
    (lambda fake: setattr(fake, "corp_id", "ww-other-corp"), False, 40013),
], ids=["500", "refused", "busy", "rate-limit", "gettoken-502", "wrong-agent", "wrong-secret", "wrong-corp"])
def test_other_failures_say_whether_to_retry(wecom, store, clock, breakage, retryable, code):
    """Outages, busy and rate-limit answers are retried later; wrong credentials are not; none hold."""
    push = make_push(wecom, store, clock)
    breakage(wecom)
    with pytest.raises(DeliveryError) as caught:
        push.send_text(WECOM_USER, "一")
    assert (caught.value.retryable, caught.value.hold, caught.value.code) == (retryable, False, code)
    assert wecom.messages == []


@pytest.mark.parametrize("agent_id", ["", "agent-7", "10000０2"])
def test_agent_id_must_be_a_number(wecom, store, clock, agent_id):
    """WeCom's AgentId is a number: anything else is a config error naming the key, at startup."""
    with pytest.raises(ConfigError, match="agent_id"):
        make_push(wecom, store, clock, agent_id=agent_id)


def test_base_url_is_per_instance(store, clock, tmp_path):
    """Two corps on two API hosts each reach their own host (no shared class attribute)."""
    other_store = SqlStore(f"sqlite:///{tmp_path}/other.db")
    with FakeWeCom(clock=clock) as one, FakeWeCom(corp_id="ww-other", clock=clock) as two:
        for fake in (one, two):
            fake.scope.add(WECOM_USER)
        make_push(one, store, clock).send_text(WECOM_USER, "to one")
        make_push(two, other_store, clock).send_text(WECOM_USER, "to two")
        assert (one.messages, two.messages) == ([(WECOM_USER, "to one")], [(WECOM_USER, "to two")])
    other_store.close()
    assert WeComClient.API_BASE_URL == "https://qyapi.weixin.qq.com/cgi-bin/"


def test_silent_api_times_out(store, clock):
    """An API that never answers fails retryably after the timeout instead of hanging the worker."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        cfg = WeComConfig(corp_id="ww", agent_id="1", secret="s", http_timeout=0.2,
                          api_base_url=f"http://127.0.0.1:{silent.getsockname()[1]}")
        with pytest.raises(DeliveryError) as caught:
            WeComPush(cfg, store, clock=clock).send_text(WECOM_USER, "一")
    assert caught.value.retryable and "Timeout" in caught.value.message


def test_logs_never_show_secret_or_token(wecom, store, clock, caplog):
    """Fetching, refreshing and sending log nothing a reader could reuse."""
    caplog.set_level(logging.INFO)
    push = make_push(wecom, store, clock)
    push.send_text(WECOM_USER, "一")
    wecom.expire_tokens()
    push.send_text(WECOM_USER, "二")
    assert "wecom: fetching access token" in caplog.text
    assert wecom.secret not in caplog.text and "WECOM-TOKEN-" not in caplog.text
