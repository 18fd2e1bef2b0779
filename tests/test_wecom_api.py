"""WeCom app messages through wechatpy.enterprise against the fake WeCom API on 127.0.0.1.

What WeComPush shares with CustomerService (delivery, the shared token, refresh once, timeouts,
logs) runs over both clients in tests/test_wechat_api.py; here is what only WeCom does.
"""
from __future__ import annotations

import pytest

from bot.config import ConfigError
from tests.api_cases import make_cs, make_push, refusal
from tests.fakes import OPENID, WECOM_USER, FakeWeChat, FakeWeCom

SEND = "/cgi-bin/message/send"
GETTOKEN = "/cgi-bin/gettoken"


def test_wecom_and_official_account_tokens_do_not_mix(store, clock):
    """The 公众号 and the WeCom app share one store, each keeps its own token: no rejected send.

    Both use the same id (old WeCom CorpIDs start with "wx" too) so only the token's name tells them apart.
    """
    with FakeWeChat(app_id="wx5823bf96d3bd56c7", clock=clock) as wechat, \
            FakeWeCom(corp_id="wx5823bf96d3bd56c7", clock=clock) as wecom:
        wechat.user_message(OPENID)
        wecom.scope.add(WECOM_USER)
        customer, push = make_cs(wechat, store, clock), make_push(wecom, store, clock)
        for _ in range(2):
            customer.send_text(OPENID, "公众号")
            push.send_text(WECOM_USER, "企业微信")
    assert (len(wechat.messages), len(wecom.messages)) == (2, 2)
    assert (wechat.calls_to("/cgi-bin/token"), wecom.calls_to(GETTOKEN)) == (1, 1)


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
    assert (wecom.calls_to(GETTOKEN), wecom.token_fetches) == (gettoken_calls, tokens_issued)
    assert len(wecom.messages) == 2 and wecom.calls_to(SEND) == 2


def test_member_outside_the_app_scope_is_held(wecom, store, clock):
    """81013 (not in the app's visible range) holds the text for the member's next passive reply."""
    assert refusal(make_push(wecom, store, clock), "LiSi", wecom) == (False, True, 81013)


@pytest.mark.parametrize("breakage, code", [
    (lambda fake: setattr(fake, "agent_id", 1000003), 40056),
    (lambda fake: setattr(fake, "secret", "rotated"), 40001),
    (lambda fake: setattr(fake, "corp_id", "ww-other-corp"), 40013),
], ids=["wrong-agent", "wrong-secret", "wrong-corp"])
def test_wrong_credentials_are_not_retried(wecom, store, clock, breakage, code):
    """A wrong AgentId, secret or corp id gives up instead of retrying an outage; none hold."""
    push = make_push(wecom, store, clock)
    breakage(wecom)
    assert refusal(push, WECOM_USER, wecom) == (False, False, code)


@pytest.mark.parametrize("agent_id", ["", "agent-7", "10000０2"])
def test_agent_id_must_be_a_number(wecom, store, clock, agent_id):
    """WeCom's AgentId is a number: anything else is a config error naming the key, at startup."""
    with pytest.raises(ConfigError, match="agent_id"):
        make_push(wecom, store, clock, agent_id=agent_id)
