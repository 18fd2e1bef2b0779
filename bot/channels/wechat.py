"""GET/POST /wechat for the Official Account: a thin Flask adapter over bot.channels.callback.

The adapter reads the query and (bounded) body, asks the Flask-free core for an `Answer` and
sends it. Plaintext, compatible and safe (AES) mode (`[wechat] mode`, default from the key); the
previous EncodingAESKey is accepted during a key rotation and the reply is encrypted with the key
that opened the request.
"""
from __future__ import annotations

import logging
import time
from contextlib import AbstractContextManager, nullcontext
from typing import Callable

from flask import Blueprint, Response, request
from werkzeug.exceptions import HTTPException
from wechatpy.crypto import WeChatCrypto

from bot.channels import callback, wxxml
from bot.channels.callback import Answer, Channel, Handler
from bot.channels.deadline import BODY_DEADLINE, read_with_deadline
from bot.channels.wxxml import Rejected
from bot.config import WeChatConfig

log = logging.getLogger(__name__)

Clock = Callable[[], float]


def to_response(answer: Answer) -> Response:
    """The core's Answer as a Flask response the browser will not sniff into HTML."""
    response = Response(answer.body, status=answer.status, mimetype=answer.content_type)
    response.headers["X-Content-Type-Options"] = "nosniff"
    if answer.status == 408:  # the connection's read side is shut: do not keep it alive
        response.headers["Connection"] = "close"
    return response


def read_request() -> bytes:
    """The request body, at most wxxml.MAX_BODY bytes (413 beyond), within BODY_DEADLINE (408)."""
    body, late = read_with_deadline(lambda: wxxml.read_body(request.stream),
                                    request.environ.get("gunicorn.socket"))
    if late:
        raise Rejected(408, f"body not received within {BODY_DEADLINE:.0f} s (stalled client)")
    return body


def callback_blueprint(channel: Channel, handle: Handler, clock: Clock,
                       slot: AbstractContextManager | None = None) -> Blueprint:
    """A blueprint serving GET (verification) and POST (messages) on /<channel>; a message's work
    (after its body arrived) runs inside `slot` (the worker's message slots, bot.app.message_slots)."""
    slot = slot or nullcontext()
    blueprint = Blueprint(channel.name, __name__)

    @blueprint.route(f"/{channel.name}", methods=["GET", "POST"])
    def endpoint() -> Response:
        """GET/HEAD: URL verification; POST: one message."""
        query, remote = request.args.to_dict(), request.remote_addr or ""
        if request.method != "POST":
            return to_response(callback.answer_get(channel, query, clock(), remote))
        try:
            body = read_request()
        except Rejected as exc:
            return to_response(callback.refusal(channel.name, "POST", remote, exc.status, exc.reason))
        except HTTPException as exc:  # e.g. the app's own MAX_CONTENT_LENGTH, a client disconnect
            return to_response(callback.refusal(channel.name, "POST", remote, exc.code or 400, exc.name))
        with slot:
            answer = callback.receive(channel, query, body, clock(), handle, remote)
        return to_response(answer)

    if not channel.token:
        log.error("%s: no token configured; every callback will be refused", channel.name)
    if channel.mode != "plain" and not channel.cryptos:
        log.error("%s: no EncodingAESKey configured; every message will be refused", channel.name)
    return blueprint


def wechat_channel(cfg: WeChatConfig) -> Channel:
    """The Official Account's protocol settings from its config (mode defaults from the key)."""
    keys = (("wechat.encoding_aes_key", cfg.encoding_aes_key),
            ("wechat.previous_encoding_aes_key", cfg.previous_encoding_aes_key))
    cryptos = wxxml.make_cryptos(WeChatCrypto, cfg.token, keys, cfg.app_id)
    mode = callback.resolve_mode(getattr(cfg, "mode", ""), bool(cryptos), "wechat.mode")
    return Channel("wechat", cfg.token, cryptos, cfg.timestamp_tolerance, mode)


def wechat_blueprint(cfg: WeChatConfig, handle: Handler, *, clock: Clock = time.time,
                     slot: AbstractContextManager | None = None) -> Blueprint:
    """GET/POST /wechat; `handle(inbound)` returns the reply text or None (raises Replay: 409)."""
    return callback_blueprint(wechat_channel(cfg), handle, clock, slot)
