"""The WeCom (企业微信) self-built app callback, GET/POST /wecom: always AES-encrypted.

Same request pipeline and error boundary as /wechat (bot.channels.wechat.Endpoint); only the
crypto (wechatpy.enterprise, bound to the CorpID) and the URL verification differ: WeCom's GET
`echostr` is itself encrypted and signed with `msg_signature`, and we answer its plaintext.
"""
from __future__ import annotations

import time

from flask import Blueprint, Request, Response
from wechatpy.enterprise.crypto import WeChatCrypto as WeComCrypto

from bot.channels import wxxml
from bot.channels.wechat import Clock, Endpoint, Handler, callback_blueprint, plain
from bot.config import WeComConfig


def verify_encrypted(endpoint: Endpoint, req: Request) -> Response:
    """GET URL verification: check `msg_signature` over the encrypted echostr, answer its plaintext."""
    timestamp, nonce = endpoint.stamp(req)
    echostr, msg_signature = req.args.get("echostr", ""), req.args.get("msg_signature", "")
    wxxml.check_signature(msg_signature, endpoint.token, timestamp, nonce, echostr)
    echo, _ = wxxml.with_any_key(endpoint.cryptos, lambda c: c.check_signature(
        msg_signature, timestamp, nonce, echostr))
    return plain(wxxml.strip_control(echo))


def wecom_blueprint(cfg: WeComConfig, handle: Handler, *, clock: Clock = time.time) -> Blueprint:
    """GET/POST /wecom for the WeCom app; `handle(inbound)` returns the reply text or None."""
    keys = (("wecom.encoding_aes_key", cfg.encoding_aes_key),
            ("wecom.previous_encoding_aes_key", getattr(cfg, "previous_encoding_aes_key", "")))
    cryptos = wxxml.make_cryptos(WeComCrypto, cfg.token, keys, cfg.corp_id)
    tolerance = getattr(cfg, "timestamp_tolerance", wxxml.DEFAULT_TOLERANCE)
    endpoint = Endpoint("wecom", cfg.token, cryptos, tolerance, handle, clock, plaintext=False)
    return callback_blueprint(endpoint, verify_encrypted)
