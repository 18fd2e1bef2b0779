"""The /wechat callback, driven by a simulated WeChat (tests/wechat_sim.py) via Flask's test client."""
from __future__ import annotations

import base64
import logging
from dataclasses import replace

import pytest

from bot.channels.wechat import wechat_blueprint
from bot.channels.wxxml import mask
from bot.config import WeChatConfig
from bot.model import Inbound
from tests.wechat_sim import (
    NOW, TENCENT_CIPHER, TENCENT_SAMPLE_KEY, WP_ECHO, WP_ID, WP_KEY, WP_REPLY, WP_REPLY_ENCRYPTED,
    WP_TOKEN, WeChatSim, chunked, decrypt, encrypt, fixture, reply_fields, serve, sha1_signature,
    text_message, with_body, with_query,
)

TOKEN, APP_ID = "pamtest", "wxb11529c136998cb6"
OLD_KEY = base64.b64encode(bytes(range(32))).decode()[:43]
USER, ACCOUNT = "oUser0000000000000000000001", "gh_7f083739789a"
TEXT = fixture("text")
CFG = WeChatConfig(token=TOKEN, app_id=APP_ID, encoding_aes_key=TENCENT_SAMPLE_KEY, mode="compatible")
SIM = WeChatSim(token=TOKEN, app_id=APP_ID)


@pytest.mark.parametrize("key, message, own_id, random16, expected", [
    (TENCENT_SAMPLE_KEY, "我是中文abcd123", APP_ID, b"aaaabbbbccccdddd", TENCENT_CIPHER),
    (WP_KEY, WP_REPLY, WP_ID, b"1234567890123456", WP_REPLY_ENCRYPTED),
], ids=["tencent-sample", "wechatpy-reply"])
def test_sim_encrypts_like_the_official_samples(key, message, own_id, random16, expected):
    """The simulator's ciphertext is byte-identical to Tencent's and wechatpy's vectors."""
    assert encrypt(key, message, own_id, random16=random16) == expected
    assert decrypt(key, expected) == (message, own_id)


@pytest.mark.parametrize("parts, expected", [
    ((WP_TOKEN, "1411525903", "461056294", WP_REPLY_ENCRYPTED), "407518b7649e86ef23978113f92d27afa9296533"),
    ((WP_TOKEN, "1411443780", "437374425", WP_ECHO), "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96"),
], ids=["reply-msg-signature", "echostr-msg-signature"])
def test_sim_signs_like_the_official_samples(parts, expected):
    """The simulator's sha1 signatures equal wechatpy's published ones."""
    assert sha1_signature(*parts) == expected


@pytest.fixture
def served():
    """The /wechat blueprint in safe-mode-capable config, with a recording echo handler."""
    return serve(wechat_blueprint, CFG)



@pytest.mark.parametrize("build, status", [
    (lambda s: s.verify_request(), 200),
    (lambda s: with_query(s.verify_request(), signature="0" * 40), 403),
    (lambda s: with_query(s.verify_request(), signature=None), 403),
    (lambda s: replace(s, now=NOW - 301).verify_request(), 403),
    (lambda s: with_query(s.verify_request(), timestamp=None), 403),
    (lambda s: with_query(s.verify_request(), nonce=None), 400),
    (lambda s: with_query(s.verify_request(), echostr=None), 400),
    (lambda s: s.verify_request("<script>alert(1)</script>"), 400),
], ids=["good", "bad-signature", "no-signature", "stale", "no-timestamp", "no-nonce", "no-echostr",
        "markup-echostr"])
def test_url_verification(served, build, status):
    """GET echoes echostr as plain text only for a fresh, correctly signed request."""
    response = served.client.open(**build(SIM))
    assert response.status_code == status
    if status == 200:
        assert response.mimetype == "text/plain"
        assert response.get_data(as_text=True) == "5837397520665436492"
    else:
        assert b"<" not in response.data


def _event(event: str) -> Inbound:
    """The Inbound expected for an event fixture (dedupe key FromUserName+CreateTime)."""
    return Inbound(user=USER, kind="event", event=event, msg_id=f"{USER}{NOW}", created_at=NOW)


@pytest.mark.parametrize("name, expected", [
    ("text", Inbound(USER, "text", text="乐企通道类型里没有乐企怎么办", msg_id="24000000000000001",
                     created_at=NOW)),
    ("voice", Inbound(USER, "voice", text="数电配置里税号和账号对调了", msg_id="24000000000000002",
                      created_at=NOW, media_id="voice_media_0001")),
    ("voice_empty", Inbound(USER, "voice", msg_id="24000000000000003", created_at=NOW,
                            media_id="voice_media_0002")),
    ("image", Inbound(USER, "image", msg_id="24000000000000004", created_at=NOW, media_id="image_media_0001",
                      pic_url="http://mmbiz.qpic.cn/mmbiz_jpg/screenshot0001/0")),
    ("subscribe", _event("subscribe")),
    ("unsubscribe", _event("unsubscribe")),
    ("click", _event("click")),
    ("scancode", _event("scancode_waitmsg")),
    ("location", Inbound(USER, "location", msg_id="24000000000000005", created_at=NOW)),
    ("link", Inbound(USER, "link", msg_id="24000000000000006", created_at=NOW)),
    ("video", Inbound(USER, "video", msg_id="24000000000000007", created_at=NOW, media_id="video_media_0001")),
    ("shortvideo", Inbound(USER, "video", msg_id="24000000000000008", created_at=NOW,
                           media_id="video_media_0002")),
    ("unknown", Inbound(USER, "unknown", msg_id="24000000000000009", created_at=NOW)),
])
def test_each_message_type_reaches_the_handler(served, name, expected):
    """Every sample message becomes the right Inbound, and the handler's text is the reply."""
    response = served.client.open(**SIM.message_request(fixture(name)))
    assert response.status_code == 200
    assert [replace(seen, stamp=None) for seen in served.handler.seen] == [expected]  # stamps: test_callback
    reply = reply_fields(response.get_data(as_text=True))
    assert reply["Content"] == f"收到：{expected.text}"


@pytest.mark.parametrize("mode", ["plain", "compat", "safe"])
def test_modes_reply_in_kind(served, mode):
    """Plaintext gets a plain reply; compatible and safe mode get a reply WeChat can decrypt."""
    response = served.client.open(**SIM.message_request(TEXT, mode))
    assert response.status_code == 200
    assert [i.text for i in served.handler.seen] == ["乐企通道类型里没有乐企怎么办"]
    body = response.get_data(as_text=True)
    reply = reply_fields(body) if mode == "plain" else SIM.open_reply(body)
    assert "Encrypt" not in reply
    assert reply["ToUserName"] == USER and reply["FromUserName"] == ACCOUNT
    assert reply["MsgType"] == "text" and reply["CreateTime"] == str(NOW)
    assert reply["Content"] == "收到：乐企通道类型里没有乐企怎么办"


DEEP = TEXT.replace("</xml>", "<Extra>" + "<a>" * 5000 + "</a>" * 5000 + "</Extra></xml>")
BAD_INPUT = {
    "bad-signature": (lambda s: with_query(s.message_request(TEXT), signature="0" * 40), 403),
    "no-signature": (lambda s: with_query(s.message_request(TEXT), signature=None), 403),
    "bad-msg-signature": (lambda s: with_query(s.message_request(TEXT, "safe"), msg_signature="0" * 40), 403),
    "no-msg-signature": (lambda s: with_query(s.message_request(TEXT, "safe"), msg_signature=None), 403),
    "stale-timestamp": (lambda s: replace(s, now=NOW - 301).message_request(TEXT), 403),
    "future-timestamp": (lambda s: replace(s, now=NOW + 301).message_request(TEXT), 403),
    "markup-nonce": (lambda s: replace(s, nonce="1]]><x/>").message_request(TEXT, "safe"), 400),
    "billion-laughs": (lambda s: s.message_request(fixture("billion_laughs")), 400),
    "billion-laughs-encrypted": (lambda s: s.message_request(fixture("billion_laughs"), "safe"), 400),
    "xxe": (lambda s: s.message_request(fixture("xxe")), 400),
    "external-dtd": (lambda s: s.message_request(fixture("external_dtd")), 400),
    "20MB-body": (lambda s: with_body(s.message_request(TEXT), b"<xml>" + b"a" * 20_000_000), 413),
    "chunked-oversize": (lambda s: chunked(s.message_request(TEXT), 64 * 1024 + 1), 413),
    "deep-nesting": (lambda s: s.message_request(DEEP), 400),
    "deep-nesting-encrypted": (lambda s: s.message_request(DEEP, "safe"), 400),
    "non-utf8": (lambda s: with_body(s.message_request(TEXT), TEXT.encode("gbk")), 400),
    "declared-gbk": (lambda s: with_body(s.message_request(TEXT), b'<?xml version="1.0" encoding="GBK"?>'
                                     + TEXT.encode("gbk")), 400),
    "missing-msgtype": (lambda s: s.message_request(fixture("missing_msgtype")), 400),
    "duplicate-msgtype": (lambda s: s.message_request(fixture("duplicate_msgtype")), 400),
    "nested-content": (lambda s: s.message_request(fixture("nested_content")), 400),
    "empty-xml": (lambda s: s.message_request(fixture("empty")), 400),
    "empty-xml-encrypted": (lambda s: s.message_request(fixture("empty"), "safe"), 400),
    "not-xml": (lambda s: with_body(s.message_request(TEXT), b"hello"), 400),
    "empty-body": (lambda s: with_body(s.message_request(TEXT), b""), 400),
    "wrong-root": (lambda s: s.message_request(TEXT.replace("xml>", "html>")), 400),
    "bad-createtime": (lambda s: s.message_request(TEXT.replace("1700000000", "yesterday")), 400),
    "wrong-appid": (lambda s: s.sealed_request(encrypt(TENCENT_SAMPLE_KEY, TEXT, "wx00000000000000bad")), 400),
    "unknown-key": (lambda s: s.sealed_request(encrypt(OLD_KEY, TEXT, APP_ID)), 400),
    "padding-zero": (lambda s: s.sealed_request(s.encrypt(TEXT, pad_byte=0)), 400),
    "padding-too-long": (lambda s: s.sealed_request(s.encrypt(TEXT, pad_byte=200)), 400),
    "bad-base64": (lambda s: s.sealed_request("%%%not-base64%%%"), 400),
    "truncated-ciphertext": (lambda s: s.sealed_request(s.encrypt(TEXT)[:-8]), 400),
}


@pytest.mark.parametrize("build, status", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_refused_and_logged(served, caplog, build, status):
    """Each malformed or hostile request gets its 4xx, a warning with the reason, no handler call."""
    with caplog.at_level(logging.WARNING, logger="bot.channels.callback"):
        response = served.client.open(**build(SIM))
    assert response.status_code == status
    assert served.handler.seen == []
    assert b"<" not in response.data and b"Traceback" not in response.data
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "refused" in r.getMessage()]
    assert len(warnings) == 1


def test_chunked_body_within_the_limit_is_read(served):
    """A chunked upload (no Content-Length) under 64 KiB is read whole and answered."""
    response = served.client.open(**chunked(SIM.message_request(TEXT), 60 * 1024))
    assert response.status_code == 200
    assert [i.msg_id for i in served.handler.seen] == ["24000000000000001"]


def test_replay_of_a_stale_request_is_refused(served):
    """The same signed request accepted now is refused once it is more than 300 s old."""
    request = SIM.message_request(TEXT, "safe")
    assert served.client.open(**request).status_code == 200
    served.clock.advance(301)
    assert served.client.open(**request).status_code == 403
    assert len(served.handler.seen) == 1


@pytest.mark.parametrize("mode", ["plain", "safe"])
def test_control_characters_are_stripped_both_ways(mode):
    """Raw control characters vanish from what the handler sees and from the reply."""
    served = serve(wechat_blueprint, CFG, respond=lambda inbound: "好的\x07\x1b，\x00收到\r\n第二行\t完")
    message = text_message("税号\x00\x01是\x1b 9111\x7f\x85\n第二行\t完")
    response = served.client.open(**SIM.message_request(message, mode))
    assert response.status_code == 200
    assert served.handler.seen[0].text == "税号是 9111\n第二行\t完"
    body = response.get_data(as_text=True)
    reply = reply_fields(body) if mode == "plain" else SIM.open_reply(body)
    assert reply["Content"] == "好的，收到\n第二行\t完"


@pytest.mark.parametrize("mode", ["plain", "safe"])
@pytest.mark.parametrize("text", [
    "a]]>b", "]]>", "]]>]]>", "</Content><MsgType>news</MsgType>", "]]><![CDATA[x", "<![CDATA[", "&amp; <b>",
])
def test_reply_text_cannot_break_out_of_cdata(mode, text):
    """Whatever the reply says, it parses as one text message carrying the text intact."""
    served = serve(wechat_blueprint, CFG, respond=lambda inbound: inbound.text)
    response = served.client.open(**SIM.message_request(text_message(text), mode))
    body = response.get_data(as_text=True)
    reply = reply_fields(body) if mode == "plain" else SIM.open_reply(body)
    assert served.handler.seen[0].text == text
    assert reply == {"ToUserName": USER, "FromUserName": ACCOUNT, "CreateTime": str(NOW),
                     "MsgType": "text", "Content": text}


@pytest.mark.parametrize("key", [TENCENT_SAMPLE_KEY, OLD_KEY], ids=["current-key", "previous-key"])
def test_key_rotation_accepts_both_keys_and_replies_with_the_one_that_worked(key):
    """During a rotation both keys open messages; each reply is encrypted with the sender's key."""
    served = serve(wechat_blueprint, replace(CFG, previous_encoding_aes_key=OLD_KEY))
    sim = replace(SIM, encoding_aes_key=key)
    response = served.client.open(**sim.message_request(TEXT, "safe"))
    assert response.status_code == 200
    assert sim.open_reply(response.data)["Content"] == "收到：乐企通道类型里没有乐企怎么办"
    other = replace(SIM, encoding_aes_key=OLD_KEY if key == TENCENT_SAMPLE_KEY else TENCENT_SAMPLE_KEY)
    with pytest.raises((AssertionError, ValueError, UnicodeDecodeError)):
        other.open_reply(response.data)


def _boom(inbound: Inbound) -> str:
    """A handler that fails."""
    raise RuntimeError("database is down")


@pytest.mark.parametrize("respond, answer", [
    (_boom, (503, b"Service Unavailable")), (lambda i: None, (200, b"success")),
    (lambda i: "", (200, b"success")), (lambda i: " \x00\x07 ", (200, b"success")),
], ids=["raises", "none", "empty", "only-controls"])
@pytest.mark.parametrize("mode", ["plain", "safe"])
def test_no_reply_answers_success_and_a_failing_handler_503(caplog, respond, answer, mode):
    """No text to send answers "success"; a handler error (the message was not kept) answers 503
    so WeChat retries, and is logged with its traceback."""
    served = serve(wechat_blueprint, CFG, respond=respond)
    with caplog.at_level(logging.ERROR, logger="bot.channels.callback"):
        response = served.client.open(**SIM.message_request(TEXT, mode))
    assert (response.status_code, response.data) == answer
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.exc_info is not None for r in errors] == ([True] if respond is _boom else [])


@pytest.mark.parametrize("text, expected", [
    ("91110108MA01ABCD2X", "9111…CD2X"),
    ("税号 911101080000000000 已提交", "税号 9111…0000 已提交"),
    ("short 12345678901234 stays", "short 12345678901234 stays"),
    ("openid oUser0000000000000000000001 is longer", "openid oUser0000000000000000000001 is longer"),
    ("x" * 400, "x" * 300 + "…"),
])
def test_mask_hides_tax_ids_in_logs(text, expected):
    """15-20 character IDs keep only their first and last four characters; long text is cut."""
    assert mask(text) == expected


def test_refusal_log_masks_a_tax_id(served, caplog):
    """A tax ID smuggled into a logged field appears masked, never whole."""
    request = with_query(SIM.message_request(TEXT), timestamp="911101080000000000")
    with caplog.at_level(logging.WARNING, logger="bot.channels.callback"):
        assert served.client.open(**request).status_code == 403
    assert "911101080000000000" not in caplog.text and "9111…0000" in caplog.text


@pytest.mark.parametrize("cfg, build, status", [
    (WeChatConfig(app_id=APP_ID), lambda s: s.verify_request(), 403),
    (WeChatConfig(app_id=APP_ID), lambda s: s.message_request(TEXT), 403),
    (WeChatConfig(token=TOKEN, app_id=APP_ID), lambda s: s.message_request(TEXT, "safe"), 400),
    (WeChatConfig(token=TOKEN, app_id=APP_ID), lambda s: s.message_request(TEXT), 200),
], ids=["no-token-get", "no-token-post", "no-key-encrypted", "no-key-plain"])
def test_partial_configuration_refuses_what_it_cannot_check(cfg, build, status):
    """Without a token nothing is trusted; without a key only plaintext messages work."""
    served = serve(wechat_blueprint, cfg)
    assert served.client.open(**build(replace(SIM, token=cfg.token or TOKEN))).status_code == status


@pytest.mark.parametrize("changes", [
    {"encoding_aes_key": "short"},
    {"encoding_aes_key": "!" * 43},
    {"previous_encoding_aes_key": "a" * 44},
    {"app_id": ""},
], ids=["short-key", "not-base64", "long-previous-key", "key-without-appid"])
def test_a_malformed_key_fails_at_startup_without_showing_it(changes):
    """A bad EncodingAESKey is a clear startup error naming the setting, not the secret."""
    cfg = replace(CFG, **changes)
    with pytest.raises(ValueError, match=r"wechat\.") as error:
        wechat_blueprint(cfg, lambda inbound: None)
    assert TENCENT_SAMPLE_KEY not in str(error.value) and "!!!!" not in str(error.value)
