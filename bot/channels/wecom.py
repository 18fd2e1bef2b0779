"""GET/POST /wecom for the WeCom (企业微信) self-built app: a thin adapter, always AES-encrypted.

Same Flask-free core as /wechat (bot.channels.callback); only the crypto (wechatpy.enterprise,
bound to the CorpID) and the URL verification differ: WeCom's GET `echostr` is itself encrypted
and signed with `msg_signature`, and we answer its plaintext. With `agent_id` configured, a
message for another app of the corp (its AgentID) is refused.
"""
from __future__ import annotations

import time
from contextlib import AbstractContextManager
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from flask import Blueprint
from wechatpy.enterprise.crypto import WeChatCrypto as WeComCrypto

from bot.channels import wxxml
from bot.channels.callback import Channel, Handler
from bot.channels.wechat import Clock, callback_blueprint
from bot.channels.wxxml import Rejected
from bot.config import WeComConfig


class AgentCrypto(WeComCrypto):
    """WeCom message crypto that also refuses (403) a decrypted message for another app's AgentID.

    Several apps of a corp may share one callback URL, token and key; the AgentID inside the
    encrypted message says which app it is for. Corp-level events carry none and pass.
    """

    def __init__(self, token: str, encoding_aes_key: str, corp_id: str, agent_id: str = ""):
        """wechatpy's WeCom crypto; `agent_id` "" accepts any AgentID."""
        super().__init__(token, encoding_aes_key, corp_id)
        self.agent_id = agent_id

    def decrypt_message(self, msg, signature, timestamp, nonce) -> str:
        """The decrypted XML, unless it names an AgentID other than ours."""
        xml = super().decrypt_message(msg, signature, timestamp, nonce)
        found = agent_of(xml) if self.agent_id else None
        if found and found != self.agent_id:
            raise Rejected(403, f"message for AgentID {found[:20]!r}, this app is {self.agent_id}")
        return xml


def agent_of(xml: str) -> str | None:
    """The message's <AgentID>; None when it has none or the XML is bad (parse_xml refuses that next)."""
    try:
        root = SafeET.fromstring(wxxml.strip_control(xml), forbid_dtd=True)
    except (DefusedXmlException, ParseError, ValueError):
        return None
    return (root.findtext("AgentID") or "").strip() or None


def wecom_channel(cfg: WeComConfig) -> Channel:
    """The WeCom app's protocol settings: always safe mode, no plain signature, no encrypt_type."""
    keys = (("wecom.encoding_aes_key", cfg.encoding_aes_key),
            ("wecom.previous_encoding_aes_key", getattr(cfg, "previous_encoding_aes_key", "")))
    cryptos = wxxml.make_cryptos(lambda *args: AgentCrypto(*args, agent_id=cfg.agent_id),
                                 cfg.token, keys, cfg.corp_id)
    tolerance = getattr(cfg, "timestamp_tolerance", wxxml.DEFAULT_TOLERANCE)
    return Channel("wecom", cfg.token, cryptos, tolerance, mode="safe", marks_encryption=False)


def wecom_blueprint(cfg: WeComConfig, handle: Handler, *, clock: Clock = time.time,
                    slot: AbstractContextManager | None = None) -> Blueprint:
    """GET/POST /wecom for the WeCom app; `handle(inbound)` returns the reply text or None (raises Replay: 409)."""
    return callback_blueprint(wecom_channel(cfg), handle, clock, slot)
