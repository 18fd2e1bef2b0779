"""Plays Tencent's side of the WeChat / WeCom callbacks in tests, independently of wechatpy.

Signatures are sha1 over the sorted, concatenated strings. Messages are AES-256-CBC (key = the
base64-decoded EncodingAESKey, IV = its first 16 bytes) over random(16) + length(4, big-endian)
+ message + AppID/CorpID, PKCS#7-padded to 32-byte blocks, then base64 — exactly as Tencent's
WXBizMsgCrypt samples (checked against their published vectors in tests/test_channel_wechat.py).

Usage with a Flask test client:  `client.open(**sim.message_request(xml, mode="safe"))`.
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from flask import Flask

from bot.model import Inbound
from tests.fakes import FakeClock

TENCENT_SAMPLE_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "wechat"
BLOCK = 32  # Tencent pads to 32-byte blocks, not AES's 16
NOW = 1_700_000_000  # the CreateTime of every fixture; the default clock of a sim

# Official vectors: Tencent's WXBizMsgCrypt sample (key abc…EFG) and wechatpy's tests/test_crypto.py.
WP_TOKEN, WP_KEY, WP_ID = "123456", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wx49f0ab532d5d035a"
WP_REPLY = """<xml>
<MsgType><![CDATA[text]]></MsgType>
<Content><![CDATA[test]]></Content>
<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>
<ToUserName><![CDATA[messense]]></ToUserName>
<AgentID>1</AgentID>
<CreateTime>1411525903</CreateTime>
</xml>"""
WP_REPLY_ENCRYPTED = (
    "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8Gq"
    "xlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qv"
    "SUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQy"
    "PR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3"
)
WP_ECHO = "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="
TENCENT_CIPHER = "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
# wechatpy's WeCom callback body (msg_signature 74d92dfe…, timestamp 1411525903, nonce 461056294).
WP_BODY = """<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>
<Encrypt><![CDATA[RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=]]></Encrypt>
<AgentID><![CDATA[1]]></AgentID>
</xml>"""


def sha1_signature(*parts: str) -> str:
    """Tencent's signature: sha1 hex of the sorted parts joined together."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def _cipher(encoding_aes_key: str) -> Cipher:
    """AES-256-CBC with the account's key and IV = key[:16]."""
    key = base64.b64decode(encoding_aes_key + "=")
    return Cipher(algorithms.AES(key), modes.CBC(key[:16]))


def encrypt(encoding_aes_key: str, message: str, own_id: str,
            random16: bytes | None = None, pad_byte: int | None = None) -> str:
    """The base64 ciphertext of `message` for AppID/CorpID `own_id` (`pad_byte` forges padding)."""
    data = message.encode("utf-8")
    plain = (random16 or os.urandom(16)) + struct.pack(">I", len(data)) + data + own_id.encode()
    count = BLOCK - len(plain) % BLOCK
    plain += bytes([count if pad_byte is None else pad_byte]) * count
    encryptor = _cipher(encoding_aes_key).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode("ascii")


def decrypt(encoding_aes_key: str, ciphertext: str) -> tuple[str, str]:
    """(message, AppID/CorpID) inside `ciphertext`; ValueError on bad padding."""
    decryptor = _cipher(encoding_aes_key).decryptor()
    plain = decryptor.update(base64.b64decode(ciphertext)) + decryptor.finalize()
    count = plain[-1]
    if not 1 <= count <= BLOCK or plain[-count:] != bytes([count]) * count:
        raise ValueError("bad PKCS#7 padding")
    body = plain[16:-count]
    (length,) = struct.unpack(">I", body[:4])
    return body[4:4 + length].decode("utf-8"), body[4 + length:].decode("utf-8")


def fixture(name: str) -> str:
    """A sample message from tests/fixtures/wechat/<name>.xml."""
    return (FIXTURES / f"{name}.xml").read_text(encoding="utf-8")


def text_message(content: str, user: str = "oUser0000000000000000000001", msg_id: str = "7000000000000000001",
                 to: str = "gh_7f083739789a", created: int = NOW) -> str:
    """A text message as WeChat sends it; `content` is XML-escaped, so any text is allowed."""
    return (f"<xml><ToUserName><![CDATA[{to}]]></ToUserName>"
            f"<FromUserName><![CDATA[{user}]]></FromUserName><CreateTime>{created}</CreateTime>"
            f"<MsgType><![CDATA[text]]></MsgType><Content>{escape(content)}</Content>"
            f"<MsgId>{msg_id}</MsgId></xml>")


def with_query(request: dict, **change: str | None) -> dict:
    """A copy of a client.open request with query parameters set (or, for None, dropped)."""
    query = {k: v for k, v in {**request["query_string"], **change}.items() if v is not None}
    return {**request, "query_string": query}


def with_body(request: dict, body: bytes) -> dict:
    """A copy of a client.open request with another body (the signed query stays valid)."""
    return {**request, "data": body}


def chunked(request: dict, size: int) -> dict:
    """A copy of a client.open request whose XML body, padded to `size` bytes, has no Content-Length."""
    head = request["data"].rstrip().removesuffix(b"</xml>")
    stream = io.BytesIO(head + b" " * (size - len(head) - 6) + b"</xml>")
    rest = {k: v for k, v in request.items() if k != "data"}
    return {**rest, "input_stream": stream, "environ_overrides": {"wsgi.input_terminated": True}}


def reply_fields(xml: str) -> dict[str, str]:
    """The fields of a (decrypted) passive reply, parsed as strictly as WeChat would."""
    root = SafeET.fromstring(xml, forbid_dtd=True)
    assert root.tag == "xml"
    return {child.tag: child.text or "" for child in root}


@dataclass
class WeChatSim:
    """Tencent's servers for one Official Account: builds signed (and encrypted) callbacks."""

    token: str = "pamtest"
    app_id: str = "wxb11529c136998cb6"
    encoding_aes_key: str = TENCENT_SAMPLE_KEY
    now: int = NOW
    nonce: str = "1320562132"
    path: str = "/wechat"
    account: str = "gh_7f083739789a"  # the envelope's ToUserName

    def base_query(self) -> dict[str, str]:
        """timestamp, nonce and the plain `signature` WeChat adds to every callback."""
        timestamp = str(self.now)
        return {"signature": sha1_signature(self.token, timestamp, self.nonce),
                "timestamp": timestamp, "nonce": self.nonce}

    def encrypt(self, xml: str, **forge) -> str:
        """`xml` encrypted for this account (see module `encrypt` for the forging options)."""
        return encrypt(self.encoding_aes_key, xml, self.app_id, **forge)

    def verify_request(self, echostr: str = "5837397520665436492") -> dict:
        """client.open kwargs for the GET URL verification."""
        return {"method": "GET", "path": self.path,
                "query_string": {**self.base_query(), "echostr": echostr}}

    def message_request(self, xml: str, mode: str = "plain") -> dict:
        """client.open kwargs POSTing `xml` in "plain", "compat" or "safe" mode."""
        if mode == "plain":
            query = {**self.base_query(), "openid": "oUser0000000000000000000001"}
            return self._post(query, xml)
        return self.sealed_request(self.encrypt(xml), xml if mode == "compat" else None)

    def sealed_request(self, ciphertext: str, clear_xml: str | None = None) -> dict:
        """client.open kwargs POSTing any `ciphertext`, correctly signed (compat: with clear_xml)."""
        query = {**self.base_query(), **self.aes_query(),
                 "msg_signature": sha1_signature(self.token, str(self.now), self.nonce, ciphertext)}
        encrypt_element = f"<Encrypt><![CDATA[{ciphertext}]]></Encrypt>"
        if clear_xml is None:
            body = f"<xml><ToUserName><![CDATA[{self.account}]]></ToUserName>{encrypt_element}</xml>"
        else:
            head, _, _ = clear_xml.rpartition("</xml>")
            body = f"{head}{encrypt_element}</xml>"
        return self._post(query, body)

    def aes_query(self) -> dict[str, str]:
        """The extra query WeChat adds to an encrypted callback."""
        return {"encrypt_type": "aes"}

    def _post(self, query: dict, body: str) -> dict:
        """client.open kwargs for a POST of `body` with `query`."""
        return {"method": "POST", "path": self.path, "query_string": query,
                "data": body.encode("utf-8"), "content_type": "text/xml"}

    def open_reply(self, body: bytes | str) -> dict[str, str]:
        """Check an encrypted reply's MsgSignature and AppID as WeChat does; return its fields."""
        envelope = reply_fields(body if isinstance(body, str) else body.decode("utf-8"))
        expected = sha1_signature(self.token, envelope["TimeStamp"], envelope["Nonce"], envelope["Encrypt"])
        assert envelope["MsgSignature"] == expected, "reply MsgSignature does not verify"
        xml, own_id = decrypt(self.encoding_aes_key, envelope["Encrypt"])
        assert own_id == self.app_id, f"reply encrypted for {own_id!r}"
        return reply_fields(xml)


@dataclass
class WeComSim(WeChatSim):
    """Tencent's servers for one WeCom self-built app: everything encrypted, msg_signature only."""

    token: str = "wecomtoken"
    app_id: str = "wx5823bf96d3bd56c7"  # the CorpID
    path: str = "/wecom"
    account: str = "wx5823bf96d3bd56c7"

    def aes_query(self) -> dict[str, str]:
        """WeCom marks nothing: every callback is encrypted."""
        return {}

    def base_query(self) -> dict[str, str]:
        """WeCom sends no plain `signature`: timestamp and nonce only."""
        return {"timestamp": str(self.now), "nonce": self.nonce}

    def verify_request(self, echostr: str = "1616140317555161061") -> dict:
        """client.open kwargs for the GET URL verification: echostr encrypted and signed."""
        sealed = self.encrypt(echostr)
        signed = sha1_signature(self.token, str(self.now), self.nonce, sealed)
        return {"method": "GET", "path": self.path,
                "query_string": {**self.base_query(), "msg_signature": signed, "echostr": sealed}}

    def message_request(self, xml: str, mode: str = "safe") -> dict:
        """client.open kwargs POSTing `xml`; WeCom always encrypts ("plain" forges a clear one)."""
        if mode == "plain":
            return self._post(self.base_query(), xml)
        return self.sealed_request(self.encrypt(xml))


def echo(inbound: Inbound) -> str:
    """The default stand-in answer: repeats what the customer said."""
    return f"收到：{inbound.text}"


@dataclass
class Recorder:
    """A stand-in dialogue handler: records every Inbound, answers with `respond(inbound)`."""

    respond: Callable[[Inbound], str | None] = echo
    seen: list[Inbound] = field(default_factory=list)

    def __call__(self, inbound: Inbound) -> str | None:
        """Record, then answer."""
        self.seen.append(inbound)
        return self.respond(inbound)


@dataclass
class Served:
    """A tiny Flask app around one callback blueprint, with its handler and clock."""

    client: object
    handler: Recorder
    clock: FakeClock


def serve(blueprint_factory: Callable, cfg, respond: Callable = echo) -> Served:
    """Mount `blueprint_factory(cfg, handler, clock=…)` on a fresh app at the sims' NOW."""
    handler, clock = Recorder(respond), FakeClock(float(NOW))
    app = Flask(__name__)
    app.register_blueprint(blueprint_factory(cfg, handler, clock=clock))
    return Served(app.test_client(), handler, clock)
