"""The /wecom callback (WeCom self-built app), driven by a simulated WeCom via Flask's test client."""
from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from bot.channels.wecom import wecom_blueprint
from bot.config import WeComConfig
from bot.model import Inbound
from tests.wechat_sim import (
    NOW, TENCENT_SAMPLE_KEY, WP_BODY, WP_ECHO, WP_ID, WP_KEY, WP_TOKEN, WeComSim, encrypt, fixture,
    serve, text_message, with_query,
)

SIM = WeComSim(encoding_aes_key=TENCENT_SAMPLE_KEY)
CFG = WeComConfig(corp_id=SIM.app_id, agent_id="1000002", secret="s", token=SIM.token,
                  encoding_aes_key=TENCENT_SAMPLE_KEY)
MESSAGE = fixture("wecom_text")



@pytest.fixture
def served():
    """The /wecom blueprint with a recording echo handler."""
    return serve(wecom_blueprint, CFG)


def _official():
    """The /wecom blueprint configured as wechatpy's WeCom test vectors, its clock at `now`."""
    cfg = WeComConfig(corp_id=WP_ID, token=WP_TOKEN, encoding_aes_key=WP_KEY)
    return serve(wecom_blueprint, cfg)


def test_official_vector_url_verification():
    """wechatpy's signed, encrypted echostr is answered with its plaintext."""
    served = _official()
    served.clock.now = 1411443780
    query = {"msg_signature": "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "timestamp": "1411443780",
             "nonce": "437374425", "echostr": WP_ECHO}
    response = served.client.get("/wecom", query_string=query)
    assert (response.status_code, response.get_data(as_text=True)) == (200, "5927782489442352469")


def test_official_vector_message_reaches_the_handler():
    """wechatpy's encrypted WeCom callback becomes an Inbound from user "messense"."""
    served = _official()
    served.clock.now = 1411525903
    query = {"msg_signature": "74d92dfeb87ba7c714f89d98870ae5eb62dff26d", "timestamp": "1411525903",
             "nonce": "461056294"}
    response = served.client.post("/wecom", query_string=query, data=WP_BODY, content_type="text/xml")
    assert response.status_code == 200
    assert [replace(seen, stamp=None) for seen in served.handler.seen] == [Inbound("messense", "text", text="test", msg_id="4363689963896700987",
                                           created_at=1411525903, channel="wecom")]


@pytest.mark.parametrize("build, status", [
    (lambda s: s.verify_request(), 200),
    (lambda s: with_query(s.verify_request(), msg_signature="0" * 40), 403),
    (lambda s: with_query(s.verify_request(), msg_signature=None), 403),
    (lambda s: replace(s, now=NOW - 301).verify_request(), 403),
    (lambda s: replace(s, app_id="wx0000000000000bad").verify_request(), 400),
    (lambda s: replace(s, encoding_aes_key=TENCENT_SAMPLE_KEY.lower()).verify_request(), 400),
], ids=["good", "bad-signature", "no-signature", "stale", "wrong-corpid", "wrong-key"])
def test_url_verification(served, build, status):
    """GET answers the decrypted echostr only when signed, fresh and encrypted for our CorpID."""
    response = served.client.open(**build(SIM))
    assert response.status_code == status
    if status == 200:
        assert response.mimetype == "text/plain"
        assert response.get_data(as_text=True) == "1616140317555161061"


def test_encrypted_text_message_gets_an_encrypted_reply(served):
    """A WeCom text message reaches the handler as channel "wecom"; the reply decrypts for WeCom."""
    response = served.client.open(**SIM.message_request(MESSAGE))
    assert response.status_code == 200
    assert [replace(seen, stamp=None) for seen in served.handler.seen] == [Inbound("zhangsan", "text", text="我的工单进度", msg_id="24000000000000101",
                                           created_at=NOW, channel="wecom")]
    reply = SIM.open_reply(response.data)
    assert reply == {"ToUserName": "zhangsan", "FromUserName": SIM.app_id, "CreateTime": str(NOW),
                     "MsgType": "text", "Content": "收到：我的工单进度"}


@pytest.mark.parametrize("build, status", [
    (lambda s: s.message_request(MESSAGE, "plain"), 403),
    (lambda s: with_query(s.message_request(MESSAGE), msg_signature="0" * 40), 403),
    (lambda s: replace(s, now=NOW + 301).message_request(MESSAGE), 403),
    (lambda s: s.sealed_request(encrypt(TENCENT_SAMPLE_KEY, MESSAGE, "wx0000000000000bad")), 400),
    (lambda s: s.sealed_request(s.encrypt(MESSAGE, pad_byte=0)), 400),
    (lambda s: s.message_request(fixture("billion_laughs")), 400),
    (lambda s: s.message_request(fixture("duplicate_msgtype")), 400),
], ids=["unencrypted", "bad-signature", "stale", "wrong-corpid", "bad-padding", "billion-laughs",
        "duplicate-msgtype"])
def test_bad_input_is_refused_and_logged(served, caplog, build, status):
    """Hostile or malformed WeCom callbacks get their 4xx and a warning; the handler never runs."""
    with caplog.at_level(logging.WARNING, logger="bot.channels.callback"):
        response = served.client.open(**build(SIM))
    assert response.status_code == status
    assert served.handler.seen == []
    assert any("wecom: refused" in r.getMessage() for r in caplog.records)


def test_reply_text_cannot_break_out_of_cdata():
    """`]]>` and markup in a reply arrive intact inside one text message."""
    text = "]]></Content><MsgType>news</MsgType>"
    served = serve(wecom_blueprint, CFG, respond=lambda inbound: inbound.text)
    response = served.client.open(**SIM.message_request(text_message(text, user="lisi")))
    assert SIM.open_reply(response.data)["Content"] == text


def test_failing_handler_answers_503(caplog):
    """A handler error is logged with its traceback and WeCom gets a 503 (it retries), never "success"."""
    def boom(inbound: Inbound) -> str:
        """A handler that fails."""
        raise RuntimeError("boom")

    served = serve(wecom_blueprint, CFG, respond=boom)
    response = served.client.open(**SIM.message_request(MESSAGE))
    assert (response.status_code, response.data) == (503, b"Service Unavailable")
    assert any(r.exc_info for r in caplog.records if r.levelno == logging.ERROR)


def test_missing_key_refuses_every_message(caplog):
    """Without an EncodingAESKey WeCom cannot work: startup says so, each message gets a 400."""
    with caplog.at_level(logging.ERROR, logger="bot.channels.callback"):
        served = serve(wecom_blueprint, replace(CFG, encoding_aes_key=""))
    assert "no EncodingAESKey" in caplog.text
    assert served.client.open(**SIM.message_request(MESSAGE)).status_code == 400


@pytest.mark.parametrize("configured, sent, status", [
    ("1000002", "<AgentID>1000002</AgentID>", 200),
    ("1000002", "<AgentID><![CDATA[1000002]]></AgentID>", 200),
    ("1000002", "<AgentID>1000003</AgentID>", 403),
    ("1000002", "<AgentID> 1000003 </AgentID>", 403),
    ("1000002", "", 200),  # corp-level events carry no AgentID
    ("", "<AgentID>1000003</AgentID>", 200),
], ids=["ours", "ours-cdata", "other-app", "other-app-spaced", "no-agentid", "not-configured"])
def test_message_for_another_app_is_refused(caplog, configured, sent, status):
    """With agent_id set, a message naming another app's AgentID gets a logged 403, never a reply."""
    served = serve(wecom_blueprint, replace(CFG, agent_id=configured))
    message = MESSAGE.replace("<AgentID>1000002</AgentID>", sent)
    with caplog.at_level(logging.WARNING, logger="bot.channels.callback"):
        response = served.client.open(**SIM.message_request(message))
    assert response.status_code == status
    assert len(served.handler.seen) == (1 if status == 200 else 0)
    assert ("AgentID" in caplog.text) == (status == 403)
