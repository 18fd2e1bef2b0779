"""The WeChat Official Account callback, GET/POST /wechat: the one error boundary around `handle`.

Plaintext, compatible and safe (AES) mode; the previous EncodingAESKey is accepted during a key
rotation and the reply is encrypted with the key that opened the request. Every bad request gets
a 4xx (logged at warning with the reason) and every unexpected error a logged "success": WeChat
never sees a 500 or a stack trace.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Callable, Optional

from flask import Blueprint, Request, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES
from wechatpy.crypto import WeChatCrypto

from bot.channels import wxxml
from bot.channels.wxxml import SUCCESS, Rejected
from bot.config import WeChatConfig
from bot.model import Inbound

log = logging.getLogger(__name__)

Handler = Callable[[Inbound], Optional[str]]
Clock = Callable[[], float]
ECHOSTR = re.compile(r"[A-Za-z0-9_-]{1,128}")  # WeChat sends a number; anything else is refused


@dataclass(frozen=True)
class Endpoint:
    """One callback URL: its token, AES keys (current first), clock and the dialogue handler."""

    channel: str
    token: str
    cryptos: tuple
    tolerance: int
    handle: Handler
    clock: Clock = time.time
    plaintext: bool = True  # the Official Account may send unencrypted messages; WeCom never

    def stamp(self, req: Request) -> tuple[str, str]:
        """The request's (timestamp, nonce), checked for format and freshness."""
        if not self.token:
            raise Rejected(403, "no token configured")
        timestamp, nonce = req.args.get("timestamp", ""), req.args.get("nonce", "")
        wxxml.check_stamp(timestamp, nonce, self.tolerance, self.clock())
        return timestamp, nonce

    def receive(self, req: Request) -> Response:
        """POST: check, open and parse the message, ask the handler, reply (encrypted if it was)."""
        timestamp, nonce = self.stamp(req)
        if self.plaintext:  # the Official Account signs every request, encrypted or not
            wxxml.check_signature(req.args.get("signature", ""), self.token, timestamp, nonce)
        envelope = wxxml.parse_xml(wxxml.read_body(req.stream))
        msg_signature = req.args.get("msg_signature", "")
        message, crypto = self.open_envelope(envelope, msg_signature, timestamp, nonce)
        inbound = wxxml.to_inbound(message, self.channel)
        return self.reply(message, self.answer(inbound), crypto, nonce)

    def open_envelope(self, envelope: dict, msg_signature: str, timestamp: str, nonce: str):
        """The plaintext message and the crypto that decrypted it (None when sent in the clear)."""
        if "Encrypt" not in envelope:
            if not self.plaintext:
                raise Rejected(400, "unencrypted message on an encrypted-only callback")
            return envelope, None
        encrypt = envelope["Encrypt"]
        wxxml.check_signature(msg_signature, self.token, timestamp, nonce, encrypt)
        xml, crypto = wxxml.with_any_key(self.cryptos, lambda c: c.decrypt_message(
            {"Encrypt": encrypt}, msg_signature, timestamp, nonce))
        return wxxml.parse_xml(xml), crypto

    def answer(self, inbound: Inbound) -> str:
        """The handler's reply text; a raising handler is logged with its traceback and says ""."""
        try:
            return self.handle(inbound) or ""
        except Exception:
            log.exception("%s: handler failed on %s message %s; replying success",
                          self.channel, inbound.kind, wxxml.mask(inbound.msg_id))
            return ""

    def reply(self, message: dict, text: str, crypto, nonce: str) -> Response:
        """The passive text reply, encrypted when the request was; "success" when there is none."""
        text = wxxml.strip_control(text)
        if not text.strip():
            return plain(SUCCESS)
        now = self.clock()
        xml = wxxml.text_reply(message, text, now)
        if crypto is not None:
            xml = crypto.encrypt_message(xml, nonce, str(int(now)))
        return Response(xml, mimetype="application/xml")


def verify_plain(endpoint: Endpoint, req: Request) -> Response:
    """GET URL verification: signature over token, timestamp, nonce; echo `echostr` back."""
    timestamp, nonce = endpoint.stamp(req)
    wxxml.check_signature(req.args.get("signature", ""), endpoint.token, timestamp, nonce)
    echostr = req.args.get("echostr", "")
    if not ECHOSTR.fullmatch(echostr):
        raise Rejected(400, "missing or malformed echostr")
    return plain(echostr)


def plain(text: str, status: int = 200) -> Response:
    """A text/plain response the browser will not sniff into HTML."""
    response = Response(text, status=status, mimetype="text/plain")
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def guarded(endpoint: Endpoint, action: Callable[[Endpoint, Request], Response]) -> Response:
    """Run `action`: a refusal becomes its 4xx, anything unexpected a logged "success"."""
    try:
        return action(endpoint, request)
    except Rejected as exc:
        return refuse(endpoint.channel, exc.status, exc.reason)
    except HTTPException as exc:  # e.g. the app's own MAX_CONTENT_LENGTH, a client disconnect
        return refuse(endpoint.channel, exc.code or 400, exc.name)
    except Exception:
        log.exception("%s: unexpected error on %s; replying success", endpoint.channel, request.method)
        return plain(SUCCESS)


def refuse(channel: str, status: int, reason: str) -> Response:
    """Log why a request was refused (masked) and answer with a bare status line."""
    log.warning("%s: refused %s from %s with %d: %s", channel, request.method,
                request.remote_addr, status, wxxml.mask(reason))
    return plain(HTTP_STATUS_CODES.get(status, "Error"), status)


def callback_blueprint(endpoint: Endpoint, verify: Callable[[Endpoint, Request], Response]) -> Blueprint:
    """A blueprint serving GET (verification) and POST (messages) on /<channel>."""
    blueprint = Blueprint(endpoint.channel, __name__)

    @blueprint.route(f"/{endpoint.channel}", methods=["GET", "POST"])
    def callback() -> Response:
        """GET/HEAD: URL verification; POST: one message."""
        action = Endpoint.receive if request.method == "POST" else verify
        return guarded(endpoint, action)

    if not endpoint.token:
        log.error("%s: no token configured; every callback will be refused", endpoint.channel)
    if not endpoint.plaintext and not endpoint.cryptos:
        log.error("%s: no EncodingAESKey configured; every message will be refused", endpoint.channel)
    return blueprint


def wechat_blueprint(cfg: WeChatConfig, handle: Handler, *, clock: Clock = time.time) -> Blueprint:
    """GET/POST /wechat for the Official Account; `handle(inbound)` returns the reply text or None."""
    keys = (("wechat.encoding_aes_key", cfg.encoding_aes_key),
            ("wechat.previous_encoding_aes_key", cfg.previous_encoding_aes_key))
    cryptos = wxxml.make_cryptos(WeChatCrypto, cfg.token, keys, cfg.app_id)
    endpoint = Endpoint("wechat", cfg.token, cryptos, cfg.timestamp_tolerance, handle, clock)
    return callback_blueprint(endpoint, verify_plain)
