"""Ops answer from the WeCom app: encrypted as WeCom sends it, through the whole app (create_app)."""
from __future__ import annotations

import itertools
import time
from dataclasses import replace

import pytest

from bot.app import create_app
from bot.config import OpsConfig, StorageConfig, WeChatConfig, WeComConfig, load_config
from bot.desk.wecom_ops import parse
from bot.model import Inbound
from tests.wechat_sim import TENCENT_SAMPLE_KEY, WeComSim

OPS_MEMBER, STAFF = "ops-zhang", "staff-li"
SIM = WeComSim(encoding_aes_key=TENCENT_SAMPLE_KEY)
_ids = itertools.count(24_000_000_000_000_500)


@pytest.mark.parametrize("text, parsed", [
    ("T000123 你好，已经处理了", (123, "你好，已经处理了")), ("#123 完成", (123, "完成")),
    ("t123：好的", (123, "好的")), ("Ｔ０００１２３　完成", (123, "完成")), ("＃7 在吗", (7, "在吗")),
    ("T000000 你好", None), ("工单123 你好", None), ("你好", None), ("", None),
])
def test_parse(text, parsed):
    """T000123 / #123 (full-width too) then the text; anything else is not a command."""
    assert parse(text) == parsed


@pytest.fixture
def app(tmp_path):
    """The whole app with WeChat push (window checks only), the console off and WeCom ops members."""
    wecom = WeComConfig(corp_id=SIM.app_id, agent_id="1000002", token=SIM.token,
                        encoding_aes_key=TENCENT_SAMPLE_KEY, ops_users=(OPS_MEMBER,))
    config = replace(load_config(None), wechat=WeChatConfig(token="tok", app_id="wx1", app_secret="s"),
                     wecom=wecom, ops=OpsConfig(), storage=StorageConfig(url=f"sqlite:///{tmp_path}/bot.db"))
    return create_app(config)


def wecom_says(app, user: str, text: str, msg_id: int | None = None) -> str | None:
    """A member writes to the app; the decrypted passive reply (None for "success")."""
    sim = replace(SIM, now=int(time.time()), nonce=str(next(_ids)))
    xml = (f"<xml><ToUserName><![CDATA[{SIM.app_id}]]></ToUserName><FromUserName><![CDATA[{user}]]>"
           f"</FromUserName><CreateTime>{sim.now}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
           f"<Content><![CDATA[{text}]]></Content><MsgId>{msg_id or next(_ids)}</MsgId>"
           f"<AgentID>1000002</AgentID></xml>")
    response = app.test_client().open(**sim.message_request(xml))
    assert response.status_code == 200
    return None if response.data == b"success" else sim.open_reply(response.data)["Content"]


def customer_ticket(app):
    """A WeChat customer asks for a person: their open ticket."""
    parts = app.extensions["bot"]
    parts.service.handle(Inbound("o-cust", "text", text="转人工", msg_id="c1", created_at=time.time()))
    return parts.store.tickets.list()[0]


def test_an_ops_member_replies_to_the_customer(app):
    """"T000001 …" reaches the ticket's customer, recorded as that member; a retry does it once."""
    parts = app.extensions["bot"]
    ticket = customer_ticket(app)
    said = wecom_says(app, OPS_MEMBER, f"{ticket.number} 你好，已经处理了", msg_id=77)
    assert said == parts.kb.render("desk-status", action="reply", outcome="queued", ticket=ticket.number)
    assert wecom_says(app, OPS_MEMBER, f"{ticket.number} 你好，已经处理了", msg_id=77) == said  # WeCom's retry
    rows = parts.store.outbox.claim(time.time() + 60, limit=10, target="customer")
    assert [(r.user, r.payload["text"]) for r in rows] == [("o-cust", parts.kb.render("ops-reply", text="你好，已经处理了"))]
    (message,) = parts.store.conversations.ticket_messages(ticket.id)
    assert (message.who, message.author) == ("ops", f"wecom:{OPS_MEMBER}")


def test_an_ops_member_resolves_with_done(app):
    """"#1 完成" resolves the ticket (the customer gets its done text); again says it was done."""
    parts = app.extensions["bot"]
    ticket = customer_ticket(app)
    assert wecom_says(app, OPS_MEMBER, f"#{ticket.id} 完成") == parts.kb.render(
        "desk-status", action="resolve", outcome="queued", ticket=ticket.number)
    assert parts.store.tickets.get(ticket.id).status == "resolved"
    assert wecom_says(app, OPS_MEMBER, f"{ticket.number} 完成") == parts.kb.render(
        "desk-status", action="resolve", outcome="already-resolved", ticket=ticket.number)


def test_unknown_tickets_and_other_words_get_a_plain_answer(app):
    """A ticket that does not exist is named; words that are no command get the usage."""
    kb = app.extensions["bot"].kb
    assert wecom_says(app, OPS_MEMBER, "T000999 你好") == kb.render("desk-status", action="reply",
                                                                   outcome="unknown", ticket="#999")
    assert wecom_says(app, OPS_MEMBER, "今天谁值班") == kb.render("ops-usage")


def test_other_members_talk_to_the_bot(app):
    """Staff who are not ops are customers of the app: the dialogue answers, no ticket is touched."""
    parts = app.extensions["bot"]
    ticket = customer_ticket(app)
    assert wecom_says(app, STAFF, f"{ticket.number} 完成") != parts.kb.render(
        "desk-status", action="resolve", outcome="queued", ticket=ticket.number)
    assert parts.store.tickets.get(ticket.id).status == "open"
    assert wecom_says(app, STAFF, "你好") == parts.kb.chat_reply("greeting")
