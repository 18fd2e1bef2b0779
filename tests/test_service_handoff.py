"""Handoffs through the service and a real store: a third FAQ's own texts, a live conversation both
ways, and the screenshot that belongs to the ticket the customer is talking about. Expected texts
are rendered from the answer files."""
from __future__ import annotations

import shutil
from dataclasses import replace

import pytest

from bot.app import build_parts
from bot.config import OpsConfig, StorageConfig, WeChatConfig, load_config
from bot.conversation.turn import HUMAN_IDLE_SECONDS
from tests.conftest import FIXTURES, ROOT
from tests.test_service import TAX_ID, outbox, say

THIRD = "print-service-offline"


@pytest.fixture
def parts(tmp_path, clock, wechat):
    """Service over a SQLite file with the shipped answers plus a third FAQ, ops on, the fake WeChat
    API for pushes and media."""
    answers = tmp_path / "answers"
    shutil.copytree(ROOT / "answers", answers)
    shutil.copytree(FIXTURES / "answers_third", answers, dirs_exist_ok=True)
    config = replace(load_config(None), answers_dir=answers,
                     storage=StorageConfig(url=f"sqlite:///{tmp_path}/bot.db"),
                     ops=OpsConfig(webhook_url="http://127.0.0.1:9/robot"),
                     wechat=WeChatConfig(token="t", app_id=wechat.app_id, app_secret=wechat.secret,
                                         api_base_url=wechat.url))
    built = build_parts(config)
    built.service.clock = built.desk.clock = clock
    built.service.spawn = lambda job: job()
    return built


def test_a_third_faq_tells_everyone_its_own_texts(parts):
    """Customer, ops and the done message come from the third FAQ's file, nothing of 乐企."""
    kb = parts.kb
    say(parts, "开票页面一直提示打印服务离线", "m1")
    created = say(parts, TAX_ID, "m2")
    (ticket,) = parts.store.tickets.list()
    assert (ticket.kind, ticket.intent) == (THIRD, THIRD)
    assert created == kb.render("ticket-created", ticket=ticket.number, tax_id=TAX_ID, flagged=False, live=False,
                                next=kb.part(THIRD, "handoff.customer", ticket=ticket.number, tax_id=TAX_ID,
                                             flagged=False))
    (ops,) = [row.payload["markdown"] for row in outbox(parts, "ops")]
    assert kb.intents[THIRD].label in ops and kb.part(THIRD, "handoff.ops", ticket="", tax_id="", words="") in ops
    parts.desk.resolve(ticket.id)
    (done,) = [row.payload["text"] for row in outbox(parts, "customer")]
    assert kb.part(THIRD, "handoff.done", ticket=ticket.number, tax_id=TAX_ID) in done
    assert not any("乐企" in text for text in (created, ops, done))


def test_a_live_conversation_both_ways(parts, clock):
    """转人工, then the customer's words reach ops (not an FAQ fallback); ops' reply reaches the
    customer; leaving hands the conversation back, said once."""
    kb = parts.kb
    opened = say(parts, "转人工", "m1")
    (ticket,) = parts.store.tickets.list()
    assert ticket.number in opened and kb.part("human-agent", "handoff.customer") in opened
    assert say(parts, "就是开票的时候提示乐企通道异常", "m2") == kb.render("human-ack")
    clock.advance(5)
    assert say(parts, "是在开票页面", "m3") is None  # acknowledged a moment ago
    notify, update = [row.payload["markdown"] for row in outbox(parts, "ops")]
    assert ticket.number in notify and "就是开票的时候提示乐企通道异常" in update and "是在开票页面" in update
    outcome = parts.desk.reply(ticket.id, "您好，请发一下报错截图", actor="console:alice")
    assert outcome.outcome == "queued"
    (reply,) = outbox(parts, "customer")
    assert reply.payload["text"] == kb.render("ops-reply", text="您好，请发一下报错截图")
    left = say(parts, "结束人工", "m4")
    assert left == kb.render("human-ended", reason="customer")
    assert parts.store.tickets.get(ticket.id).status == "resolved"
    assert say(parts, "乐企怎么收费", "m5") == kb.render("fallback", question="乐企怎么收费")


def test_ops_resolving_a_live_conversation_tells_the_customer_once(parts, clock):
    """The human FAQ's done text goes out when ops resolve; the next message is the bot's again."""
    kb = parts.kb
    say(parts, "转人工", "m1")
    (ticket,) = parts.store.tickets.list()
    assert parts.desk.resolve(ticket.id).outcome == "queued"
    (done,) = [row.payload["text"] for row in outbox(parts, "customer")]
    assert kb.part("human-agent", "handoff.done") in done
    assert say(parts, "谢谢", "m2") == kb.chat_reply("thanks")


def test_an_idle_conversation_goes_back_to_the_bot(parts, clock):
    """Nobody wrote for the idle limit: the bot says so once and answers; the ticket stays open."""
    kb = parts.kb
    say(parts, "转人工", "m1")
    clock.advance(HUMAN_IDLE_SECONDS + 1)
    reply = say(parts, "乐企怎么收费", "m2")
    assert reply == "\n\n".join([kb.render("human-ended", reason="idle"),
                                 kb.render("fallback", question="乐企怎么收费")])
    assert parts.store.tickets.list()[0].status == "open"


def test_the_screenshot_after_still_missing_reopens_that_ticket(parts, wechat):
    """Channel ticket resolved, then a 转人工 ticket resolved: "更新配置后还是没有" + image reopen the
    channel ticket, and the image is downloaded and kept."""
    kb = parts.kb
    say(parts, "数电配置里找不到乐企联用通道", "m1")
    say(parts, TAX_ID, "m2")
    say(parts, "转人工", "m3")
    channel, human = sorted(parts.store.tickets.list(), key=lambda t: t.id)
    for ticket in (channel, human):
        parts.desk.resolve(ticket.id)
    assert say(parts, "更新配置后还是没有", "m4") == kb.part("leqi-channel-missing", "handoff.still_missing")
    wechat.media["MEDIA1"] = ("image/png", b"\x89PNG screenshot")
    reply = say(parts, "", "m5", kind="image", media_id="MEDIA1", pic_url="http://mmbiz.invalid/p")
    assert reply == kb.render("image-attached", ticket=channel.number)
    assert parts.store.tickets.get(channel.id).status == "open"
    assert parts.store.tickets.get(human.id).status == "resolved"
    (attachment,) = parts.store.conversations.ticket_attachments(channel.id)
    assert attachment.stored and wechat.calls_to("/cgi-bin/media/get") == 1
    assert parts.desk.attachment(attachment.id) == ("image/png", b"\x89PNG screenshot")
