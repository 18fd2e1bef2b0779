"""The WeChat / WeCom callback protocol as plain functions over bytes and a dict of query parameters.

No Flask here: `bot.channels.wechat` and `bot.channels.wecom` are thin adapters that hand this core
the query, the body and the clock, and turn its `Answer` into an HTTP response. One message goes
  verify (signature, timestamp, nonce) → open (mode, msg_signature, decrypt, parse)
  → the handler, given the delivery's timestamp+nonce (`Inbound.stamp`) → the reply (encrypted if
it was). The handler's store checks the stamp in the message's own transaction (once per message)
and raises `Replay` for a stamp another message used: a 409 here. Every refusal is a `Rejected`
turned into a 4xx here; nothing unauthenticated reaches the handler. A handler that fails answers 503, so WeChat retries: a message is
never swallowed by a bare "success".
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from typing import Callable, Mapping, Optional

from bot.channels import wxxml
from bot.channels.wxxml import SUCCESS, Rejected
from bot.model import Inbound, Replay, Stamp

log = logging.getLogger(__name__)

ECHOSTR = re.compile(r"[A-Za-z0-9_-]{1,128}")  # WeChat sends a number; anything else is refused
MODES = ("safe", "compatible", "plain")
STATUS_TEXT = {400: "Bad Request", 403: "Forbidden", 408: "Request Timeout", 409: "Conflict",
               413: "Payload Too Large",
               500: "Internal Server Error", 503: "Service Unavailable"}

Query = Mapping[str, str]
Handler = Callable[[Inbound], Optional[str]]


@dataclass(frozen=True)
class Answer:
    """What to send back: HTTP status, body and content type."""

    status: int
    body: str
    content_type: str = "text/plain"


@dataclass(frozen=True)
class Channel:
    """One callback URL's protocol settings: token, AES keys (current first), mode, tolerance."""

    name: str  # "wechat" | "wecom": the path and the Inbound's channel
    token: str
    cryptos: tuple
    tolerance: int
    mode: str = "safe"  # safe: encrypted only; compatible: both; plain: plaintext only
    marks_encryption: bool = True  # the Official Account adds signature= and encrypt_type=aes; WeCom neither


@dataclass(frozen=True)
class Opened:
    """An authenticated message: its fields, the Inbound, the crypto that opened it, the stamp."""

    fields: dict
    inbound: Inbound
    crypto: object | None
    timestamp: str
    nonce: str


def resolve_mode(mode: str, has_key: bool, setting: str) -> str:
    """The configured mode, or the default from the key (safe with one, plain without)."""
    mode = (mode or ("safe" if has_key else "plain")).strip().lower()
    if mode not in MODES:
        raise ValueError(f"{setting} must be one of {', '.join(MODES)}, not {mode[:20]!r}")
    if mode != "plain" and not has_key:
        raise ValueError(f"{setting} = {mode!r} needs an encoding_aes_key")
    return mode


def check_stamp(channel: Channel, query: Query, now: float) -> tuple[str, str]:
    """The request's (timestamp, nonce), checked for format and freshness."""
    if not channel.token:
        raise Rejected(403, "no token configured")
    timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
    wxxml.check_stamp(timestamp, nonce, channel.tolerance, now)
    return timestamp, nonce


def verify(channel: Channel, query: Query, now: float) -> str:
    """GET URL verification: the text to echo back (Rejected when the request is not WeChat's)."""
    timestamp, nonce = check_stamp(channel, query, now)
    echostr = query.get("echostr", "")
    if channel.marks_encryption:  # the Official Account: plain signature, echostr as is
        wxxml.check_signature(query.get("signature", ""), channel.token, timestamp, nonce)
        if not ECHOSTR.fullmatch(echostr):
            raise Rejected(400, "missing or malformed echostr")
        return echostr
    msg_signature = query.get("msg_signature", "")  # WeCom: echostr encrypted and signed
    wxxml.check_signature(msg_signature, channel.token, timestamp, nonce, echostr)
    echo, _ = wxxml.with_any_key(channel.cryptos, lambda c: c.check_signature(
        msg_signature, timestamp, nonce, echostr))
    return wxxml.strip_control(echo)


def open_message(channel: Channel, query: Query, body: bytes, now: float) -> Opened:
    """Authenticate, decrypt and parse one POSTed message (Rejected on anything wrong)."""
    timestamp, nonce = check_stamp(channel, query, now)
    if channel.marks_encryption:  # the Official Account signs every request, encrypted or not
        wxxml.check_signature(query.get("signature", ""), channel.token, timestamp, nonce)
    envelope = wxxml.parse_xml(body)
    encrypted = "Encrypt" in envelope
    _check_mode(channel, query, encrypted)
    crypto = None
    fields = envelope
    if encrypted:
        fields, crypto = _decrypt(channel, envelope["Encrypt"], query.get("msg_signature", ""),
                                  timestamp, nonce)
    stamp = Stamp(f"{channel.name}:{timestamp}:{nonce}", int(timestamp) + channel.tolerance)
    inbound = replace(wxxml.to_inbound(fields, channel.name), stamp=stamp)
    return Opened(fields, inbound, crypto, timestamp, nonce)


def _check_mode(channel: Channel, query: Query, encrypted: bool) -> None:
    """Refuse what the mode forbids: plaintext under encrypt_type=aes always, then by mode."""
    if channel.marks_encryption:
        marked = query.get("encrypt_type", "") == "aes"
        if marked and not encrypted:
            raise Rejected(400, "plaintext body under encrypt_type=aes")
        if encrypted and not marked:
            raise Rejected(400, "encrypted body without encrypt_type=aes")
    if not encrypted and channel.mode == "safe":
        raise Rejected(403, f"plaintext message refused: {channel.name} mode is safe")
    if encrypted and channel.mode == "plain":
        raise Rejected(400, f"encrypted message refused: {channel.name} mode is plain")


def _decrypt(channel: Channel, encrypt: str, msg_signature: str, timestamp: str, nonce: str):
    """The decrypted, parsed message and the crypto that opened it (msg_signature checked first)."""
    wxxml.check_signature(msg_signature, channel.token, timestamp, nonce, encrypt)
    xml, crypto = wxxml.with_any_key(channel.cryptos, lambda c: c.decrypt_message(
        {"Encrypt": encrypt}, msg_signature, timestamp, nonce))
    return wxxml.parse_xml(xml), crypto


def dedupe_key(inbound: Inbound) -> str:
    """The key retries of one message share: channel + MsgId (events: FromUserName+CreateTime)."""
    return f"{inbound.channel}:{inbound.msg_id}"


def build_reply(opened: Opened, text: str, now: float) -> Answer:
    """The passive text reply, encrypted when the request was; "success" when there is none."""
    text = wxxml.strip_control(text or "")
    if not text.strip():
        return Answer(200, SUCCESS)
    xml = wxxml.text_reply(opened.fields, text, now)
    if opened.crypto is not None:
        xml = opened.crypto.encrypt_message(xml, opened.nonce, str(int(now)))
    return Answer(200, xml, "application/xml")


def refusal(channel: str, method: str, remote: str, status: int, reason: str) -> Answer:
    """Log why a request was refused (masked) and answer with a bare status line."""
    log.warning("%s: refused %s from %s with %d: %s", channel, method, remote or "?", status,
                wxxml.mask(reason))
    return Answer(status, STATUS_TEXT.get(status, "Error"))


def receive(channel: Channel, query: Query, body: bytes, now: float, handle: Handler,
            remote: str = "") -> Answer:
    """POST: the whole pipeline for one message; never raises."""
    try:
        opened = open_message(channel, query, body, now)
    except Rejected as exc:
        return refusal(channel.name, "POST", remote, exc.status, exc.reason)
    try:
        text = handle(opened.inbound)
    except Replay:
        return refusal(channel.name, "POST", remote, 409, "replay: timestamp+nonce already used for another message")
    except Exception:  # noqa: BLE001 - the message was not kept: make WeChat retry it
        log.exception("%s: handler failed on %s message %s; answering 503 so WeChat retries",
                      channel.name, opened.inbound.kind, wxxml.mask(opened.inbound.msg_id))
        return Answer(503, STATUS_TEXT[503])
    return build_reply(opened, text or "", now)


def answer_get(channel: Channel, query: Query, now: float, remote: str = "") -> Answer:
    """GET: URL verification; never raises."""
    try:
        return Answer(200, verify(channel, query, now))
    except Rejected as exc:
        return refusal(channel.name, "GET", remote, exc.status, exc.reason)
