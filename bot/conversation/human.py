"""Stage.HUMAN: a live conversation with a person on the customer's ticket (SPEC 10).

What the customer writes is added to the ticket and passed on to ops (Forward; the service
coalesces it per ticket), with a short acknowledgment at most once per ACK_QUIET_SECONDS — never an
FAQ fallback. An FAQ question still gets its answer, and the ticket notes that the bot answered.
The conversation ends when the customer leaves (结束人工/不用了: the ticket closes), when ops resolve
the ticket (the service's TicketView says it is closed; ops' `done` text already told the customer)
or after `Limits.human_idle_seconds` without a message from either side; the bot then says once
that it has taken over (human-ended) and handles the message itself.
"""
from __future__ import annotations

from dataclasses import replace

from bot.conversation.turn import Result, Turn
from bot.model import AttachImage, CreateTicket, EndHuman, EndSession, Forward, LogHit, Reply, Session


def event(turn: Turn) -> Result:
    """Unsubscribing ends the conversation (and the session); other events change nothing."""
    if turn.inbound.event.lower() == "unsubscribe":
        return Session(updated_at=turn.now), [EndHuman(turn.state.purpose, "customer"), EndSession()]
    return turn.keep(), []


def image(turn: Turn) -> Result:
    """A screenshot belongs to this conversation's ticket."""
    inbound = turn.inbound
    return turn.keep(), [AttachImage(inbound.media_id, inbound.pic_url, about=turn.state.purpose)]


def leave(turn: Turn) -> Result:
    """结束人工 / 不用了: the ticket closes and the bot takes over, saying so once."""
    return turn.idle(), [EndHuman(turn.state.purpose, "customer"), turn.say("human-ended", reason="customer")]


def again(turn: Turn) -> Result:
    """Asking for a person again: the open ticket takes the words and names itself (one per need)."""
    return turn.keep(), [CreateTicket(turn.state.purpose, turn.text)]


def faq(turn: Turn) -> Result | None:
    """An FAQ question gets its answer (no flow starts); the ticket notes it. None for anything else."""
    match = turn.match()
    intent = turn.kb.intents.get(match.intent or "")
    if match.decision != "answer" or intent is None or intent.kind != "faq" or intent.then == "handoff":
        return None
    reply = Reply(turn.kb.chat_reply(intent.id, tax_id=turn.state.tax_id), answer_id=intent.id)
    return turn.keep(), [LogHit(intent.id), Forward(turn.state.purpose, turn.text, answered=intent.id), reply]


def forward(turn: Turn) -> Result:
    """Anything else is for the person: pass it on; acknowledge unless we did so a moment ago."""
    actions = [Forward(turn.state.purpose, turn.text or f"[{turn.inbound.kind}]")]
    if turn.now - turn.state.acked_at < turn.limits.ack_quiet_seconds:
        return turn.keep(), actions
    return replace(turn.keep(), acked_at=turn.now), [*actions, turn.say("human-ack")]


def timed_out(turn: Turn) -> Result:
    """TIMEOUT: nobody wrote for the idle limit; the ticket stays open, the bot says it took over."""
    return turn.idle(), [EndHuman(turn.state.purpose, "idle"), turn.say("human-ended", reason="idle")]


def closed(turn: Turn) -> Result:
    """Ops resolved the ticket: back to the bot, silently (their `done` text told the customer)."""
    return turn.idle(), []
