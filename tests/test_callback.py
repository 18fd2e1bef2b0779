"""The Flask-free protocol core (bot.channels.callback): modes, replay cache, and properties over
any bytes and any query (hypothesis). Run longer with BOT_HYPOTHESIS_PROFILE=long (README)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.channels import callback
from bot.channels.wechat import wechat_channel
from bot.channels.wecom import wecom_channel
from bot.config import WeChatConfig, WeComConfig
from bot.model import Replay, Stamp
from tests.wechat_sim import (NOW, TENCENT_SAMPLE_KEY, Recorder, WeChatSim, WeComSim, fixture,
                              reply_fields, sha1_signature, text_message, with_query)

settings.register_profile("ci", max_examples=150, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=20_000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("BOT_HYPOTHESIS_PROFILE", "ci"))

TOKEN, APP_ID = "pamtest", "wxb11529c136998cb6"
SIM = WeChatSim(token=TOKEN, app_id=APP_ID)
WECOM = WeComSim(encoding_aes_key=TENCENT_SAMPLE_KEY)
TEXT = fixture("text")


def channel(mode: str = "", key: str = TENCENT_SAMPLE_KEY) -> callback.Channel:
    """The /wechat protocol settings for `mode` ("" = the default from the key)."""
    return wechat_channel(WeChatConfig(token=TOKEN, app_id=APP_ID, encoding_aes_key=key, mode=mode))


WECOM_CHANNEL = wecom_channel(WeComConfig(corp_id=WECOM.app_id, token=WECOM.token,
                                          encoding_aes_key=TENCENT_SAMPLE_KEY))


@dataclass
class StampedRecorder(Recorder):
    """A handler with a replay cache in a dict, as the store keeps it (to prove what reaches it)."""

    entries: dict = field(default_factory=dict)

    def __call__(self, inbound):
        """Replay for a stamp another message used first; else record and answer."""
        key = callback.dedupe_key(inbound)
        if self.entries.setdefault(inbound.stamp.name, key) != key:
            raise Replay(inbound.stamp.name)
        return super().__call__(inbound)


def post(request: dict, chan: callback.Channel | None = None, handler=None):
    """Run a sim's client.open kwargs through the core; (answer, handler)."""
    handler = handler or Recorder()
    answer = callback.receive(chan or channel("compatible"), request["query_string"], request["data"],
                              float(NOW), handler)
    return answer, handler


@pytest.mark.parametrize("key, mode, expected", [
    (TENCENT_SAMPLE_KEY, "", "safe"), ("", "", "plain"), (TENCENT_SAMPLE_KEY, "Compatible", "compatible"),
    (TENCENT_SAMPLE_KEY, "plain", "plain"),
])
def test_mode_defaults_from_the_key(key, mode, expected):
    """With an EncodingAESKey the default is safe; without one, plain."""
    assert channel(mode, key).mode == expected


@pytest.mark.parametrize("key, mode", [("", "safe"), ("", "compatible"), (TENCENT_SAMPLE_KEY, "aes")])
def test_an_impossible_mode_fails_at_startup(key, mode):
    """safe/compatible without a key, or an unknown mode, is a clear error naming the setting."""
    with pytest.raises(ValueError, match=r"wechat\.mode"):
        channel(mode, key)


PLAIN_UNDER_AES = with_query(SIM.message_request(TEXT, "plain"), encrypt_type="aes")
SEALED_UNMARKED = with_query(SIM.message_request(TEXT, "safe"), encrypt_type=None)
REQUESTS = {"plain": SIM.message_request(TEXT, "plain"), "compat": SIM.message_request(TEXT, "compat"),
            "safe": SIM.message_request(TEXT, "safe"), "plain-under-aes": PLAIN_UNDER_AES,
            "sealed-unmarked": SEALED_UNMARKED}


@pytest.mark.parametrize("mode, sent, status", [
    ("safe", "safe", 200), ("safe", "compat", 200), ("safe", "plain", 403),
    ("compatible", "safe", 200), ("compatible", "compat", 200), ("compatible", "plain", 200),
    ("plain", "plain", 200), ("plain", "safe", 400), ("plain", "compat", 400),
    ("safe", "plain-under-aes", 400), ("compatible", "plain-under-aes", 400),
    ("plain", "plain-under-aes", 400), ("safe", "sealed-unmarked", 400),
])
def test_mode_decides_what_is_accepted(mode, sent, status):
    """safe takes only encrypted messages, plain only plaintext, compatible both; a plaintext
    body under encrypt_type=aes is refused in every mode."""
    answer, handler = post(REQUESTS[sent], channel(mode))
    assert answer.status == status
    assert len(handler.seen) == (1 if status == 200 else 0)


def test_captured_query_with_a_forged_plaintext_body_is_refused_in_safe_mode():
    """The query of a real (encrypted) callback, as an access log would show it, plus a plaintext
    body the attacker wrote: refused, no handler call."""
    captured = SIM.message_request(TEXT, "safe")
    forged = {**captured, "data": text_message("转人工", user="oForged000000000000000000001").encode()}
    for query in (captured["query_string"], {**captured["query_string"], "encrypt_type": "raw"}):
        answer, handler = post({**forged, "query_string": query}, channel("safe"))
        assert answer.status in (400, 403) and handler.seen == []


@pytest.mark.parametrize("chan, sim", [(channel("safe"), SIM), (channel("plain"), SIM), (WECOM_CHANNEL, WECOM)],
                         ids=["wechat-safe", "wechat-plain", "wecom"])
def test_a_stamp_is_good_for_one_message(chan, sim):
    """Two different messages under one timestamp+nonce: the second is a replay (409); the same
    message again under it (a retry) still goes through to the dedupe."""
    mode = "plain" if chan.mode == "plain" else "safe"
    handler = StampedRecorder()
    first, again, other = (sim.message_request(text_message(text, msg_id=msg_id), mode)
                           for text, msg_id in (("你好", "1"), ("你好", "1"), ("转人工", "2")))
    assert [post(r, chan, handler)[0].status for r in (first, again, other)] == [200, 200, 409]
    assert list(handler.entries.values()) == [f"{chan.name}:1"]
    assert handler.seen[0].stamp == Stamp(f"{chan.name}:{sim.now}:{sim.nonce}", sim.now + chan.tolerance)


def test_dedupe_key_names_channel_and_message():
    """MsgId (or FromUserName+CreateTime for events) within its channel."""
    answer, handler = post(SIM.message_request(fixture("subscribe")))
    assert answer.status == 200
    assert callback.dedupe_key(handler.seen[0]) == f"wechat:oUser0000000000000000000001{NOW}"


# ---- properties --------------------------------------------------------------------------

QUERY_KEYS = st.sampled_from(["signature", "timestamp", "nonce", "msg_signature", "encrypt_type",
                              "echostr", "openid", "x"])
QUERY_VALUES = st.one_of(st.text(max_size=60), st.just(str(NOW)), st.just("aes"), st.just("1320562132"),
                         st.from_regex(r"[0-9a-f]{40}", fullmatch=True))
QUERIES = st.dictionaries(QUERY_KEYS, QUERY_VALUES, max_size=6)
BODIES = st.one_of(st.binary(max_size=2000), st.text(max_size=500).map(str.encode),
                   st.sampled_from([fixture(n).encode() for n in ("text", "billion_laughs", "xxe", "empty",
                                                                 "nested_content", "duplicate_msgtype")]))
CHANNELS = st.sampled_from([channel("safe"), channel("compatible"), channel("plain"), WECOM_CHANNEL])


def authenticated(chan: callback.Channel, query: dict) -> bool:
    """Whether `query` carries a valid plain signature (WeCom: none exists, so never)."""
    parts = (chan.token, query.get("timestamp", ""), query.get("nonce", ""))
    return chan.marks_encryption and query.get("signature") == sha1_signature(*parts)


def well_formed(answer: callback.Answer, sim: WeChatSim = SIM) -> bool:
    """A 4xx with a bare status line, "success", or a (decrypted) text reply WeChat can parse."""
    if 400 <= answer.status < 500:
        return "<" not in answer.body
    if answer.status != 200:
        return False
    if answer.body == "success":
        return True
    fields = reply_fields(answer.body)
    if "Encrypt" in fields:
        fields = sim.open_reply(answer.body)
    return fields["MsgType"] == "text" and fields["ToUserName"] != ""


@given(chan=CHANNELS, query=QUERIES, body=BODIES)
def test_any_bytes_and_any_query_get_a_4xx_or_a_well_formed_reply(chan, query, body):
    """Never an exception, never a 5xx; an unauthenticated request changes nothing."""
    handler = StampedRecorder()
    answer = callback.receive(chan, query, body, float(NOW), handler)
    assert well_formed(answer)
    if not authenticated(chan, query):
        assert answer.status >= 400 and handler.seen == [] and handler.entries == {}


@given(query=QUERIES)
def test_any_verification_query_gets_a_4xx_or_its_echo(query):
    """GET verification never raises and echoes only for a signed, fresh request."""
    chan = channel("compatible")
    answer = callback.answer_get(chan, query, float(NOW))
    assert answer.status == (200 if authenticated(chan, query) and answer.status == 200 else answer.status)
    assert answer.status == 200 or 400 <= answer.status < 500
    if answer.status == 200:
        assert answer.body == query["echostr"] and authenticated(chan, query)


@given(mode=st.sampled_from(["safe", "compat", "plain"]), body=BODIES, data=st.data())
def test_a_signed_query_with_any_body_never_fails(mode, body, data):
    """A genuine signed query (as captured from a log) with any body: a 4xx or a well-formed reply;
    the handler runs only for a body that parses as a message, at most once."""
    request = SIM.message_request(TEXT, mode)
    if data.draw(st.booleans()):  # or the real body with a few bytes flipped
        raw = bytearray(request["data"])
        for index in data.draw(st.lists(st.integers(0, len(raw) - 1), max_size=4)):
            raw[index] ^= 0x5A
        body = bytes(raw)
    handler = StampedRecorder()
    answer = callback.receive(channel("compatible"), request["query_string"], body, float(NOW), handler)
    assert well_formed(answer)
    assert len(handler.seen) == (1 if answer.status == 200 else 0)


def test_the_query_of_a_captured_url_is_only_query_text():
    """Sanity for the properties above: a sim query round-trips through urlencode unchanged."""
    query = replace(SIM, nonce="42").message_request(TEXT, "safe")["query_string"]
    assert dict(pair.split("=") for pair in urlencode(query).split("&")) == query
