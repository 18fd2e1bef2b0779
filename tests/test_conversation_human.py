"""Stage.HUMAN: a live conversation with a person, through the pure step on the shipped answers."""
from __future__ import annotations

import pytest

from bot.conversation import Conversation, Limits
from bot.conversation.turn import ACK_QUIET_SECONDS, HUMAN_IDLE_SECONDS
from bot.model import (AttachImage, CreateTicket, EndHuman, EndSession, Forward, Inbound, LogHit,
                       LogUnanswered, Session, ShowTickets, TicketView)
from tests.test_conversation import CM, HUMAN, HUMAN_ID, IDLE, IDS, TAX, USCC, A, P, ask, inbound, resolve, run, t  # noqa: F401

OPEN = TicketView(open=True)
ENTER = ("转人工", [LogHit(HUMAN_ID), CreateTicket(HUMAN_ID, "转人工")], HUMAN)
WORDS = "就是开票的时候提示乐企通道异常"

CONVERSATIONS = {
    "what the customer explains goes to the person, acknowledged once": [
        ENTER, (WORDS, [Forward(HUMAN_ID, WORDS), t("human-ack")], HUMAN),
        ("是在开票页面", [Forward(HUMAN_ID, "是在开票页面")], HUMAN, ACK_QUIET_SECONDS - 1),
        ("还在吗", [Forward(HUMAN_ID, "还在吗"), t("human-ack")], HUMAN, ACK_QUIET_SECONDS)],
    "nothing there is an FAQ fallback or a tax-ID flow": [
        ENTER, ("乐企怎么收费", [Forward(HUMAN_ID, "乐企怎么收费"), t("human-ack")], HUMAN),
        (USCC, [Forward(HUMAN_ID, USCC)], HUMAN)],
    "an FAQ question still gets its answer and the ticket notes it": [
        ENTER, ("乐企单位ID填反了怎么办", [LogHit(IDS), Forward(HUMAN_ID, "乐企单位ID填反了怎么办", answered=IDS),
                                      A(IDS)], HUMAN)],
    "asking again names the open ticket (one per need)": [
        ENTER, ("转人工", [CreateTicket(HUMAN_ID, "转人工")], HUMAN),
        ("我要转人工", [CreateTicket(HUMAN_ID, "我要转人工")], HUMAN)],
    "status works; a screenshot belongs to this conversation": [
        ENTER, ("进度", [ShowTickets()], HUMAN),
        (Inbound("u1", "image", media_id="m1"), [AttachImage("m1", "", about=HUMAN_ID)], HUMAN)],
    "the customer leaves in words": [
        ENTER, ("结束人工", [EndHuman(HUMAN_ID, "customer"), t("human-ended", reason="customer")], IDLE),
        ("乐企怎么收费", [LogUnanswered("乐企怎么收费"), t("fallback", question="乐企怎么收费")], IDLE)],
    "不用了 leaves too": [ENTER, ("不用了", [EndHuman(HUMAN_ID, "customer"),
                                            t("human-ended", reason="customer")], IDLE)],
    "idle: the bot says once that it took over, then answers": [
        ENTER, ("数电配置里没有乐企联用通道", [EndHuman(HUMAN_ID, "idle"), t("human-ended", reason="idle"),
                                        LogHit(CM), A(CM), ask()], TAX, HUMAN_IDLE_SECONDS + 1)],
    "not idle yet": [ENTER, (WORDS, [Forward(HUMAN_ID, WORDS), t("human-ack")], HUMAN, HUMAN_IDLE_SECONDS)],
    "unsubscribing ends it": [ENTER, (Inbound("u1", "event", event="unsubscribe"),
                                      [EndHuman(HUMAN_ID, "customer"), EndSession()], IDLE)],
}


@pytest.mark.parametrize("turns", list(CONVERSATIONS.values()), ids=list(CONVERSATIONS))
def test_live_conversation(kb, turns):
    """A customer who asked for a person, their ticket open."""
    run(kb, Session(), turns, ticket=OPEN)


def test_ops_resolving_hands_back_silently(kb):
    """Ops resolved the ticket (their done text told the customer): the message is the bot's again."""
    state = run(kb, Session(), [ENTER], ticket=OPEN)
    run(kb, state, [("谢谢", [LogHit("thanks"), A("thanks")], IDLE)], ticket=TicketView(open=False))


def test_ops_replies_keep_the_conversation_alive(kb):
    """The idle limit counts from the last message of either side."""
    state = run(kb, Session(), [ENTER], ticket=OPEN)
    ops_wrote = TicketView(open=True, ops_at=state.updated_at + HUMAN_IDLE_SECONDS)
    run(kb, state, [(WORDS, [Forward(HUMAN_ID, WORDS), t("human-ack")], HUMAN, HUMAN_IDLE_SECONDS + 60)],
        ticket=ops_wrote)


def test_the_idle_limit_comes_from_the_config(kb):
    """A Conversation built with a shorter idle limit ends sooner."""
    short = Conversation(Limits(human_idle_seconds=300))
    state, _ = short.step(Session(), inbound("转人工"), kb, 1000.0)
    state, actions = short.step(state, inbound("你好"), kb, 1000.0 + 301, OPEN)
    assert state.stage is IDLE
    assert actions[:2] == resolve(kb, [EndHuman(HUMAN_ID, "idle"), t("human-ended", reason="idle")])


def test_still_missing_comes_from_the_faq_that_says_it(kb):
    """The screenshot request is the channel FAQ's handoff.still_missing, and names it for images."""
    run(kb, Session(), [("更新配置以后还是没有", [P(CM, "handoff.still_missing")], IDLE),
                            (Inbound("u1", "image", media_id="m9"), [AttachImage("m9", "", about=CM)], IDLE)])
