"""The pure dialogue core: one customer message + state → new state + actions (no I/O).

A conversation is always in one explicit Stage, and each stage has its table of handlers, tried in
order — python-telegram-bot's ConversationHandler shape: STAGES = {stage: [handlers]}, each handler
a filter plus a callback that returns the next state (or None to let the next handler try).
Commands come from one seam, bot.conversation.recognise.recognise(text, stage).

Before the table, a stage that has been silent too long times out (TIMEOUTS: its handler may tell
the customer once), and a live conversation whose ticket ops closed ends; the message is then
handled from IDLE (ConversationHandler.END). Flows and texts come from the answer files
(bot.conversation.flows, bot.conversation.human); the service performs the actions.

FAQ replies and follow-up texts are separate Reply actions with the full FAQ text; the caller
joins them with a blank line and, past WeChat's byte limit, swaps the FAQ part (Reply.answer_id)
for its short version with an absolute link — it knows the public URL — keeping the question.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from bot.conversation import flows, human
from bot.conversation.turn import Limits, On, Result, Turn, always, command, first, kind
from bot.kb import KnowledgeBase
from bot.model import Inbound, Session, Stage, TicketView
from bot.understanding.textnorm import clean

UNSUPPORTED = ("location", "link", "video", "unknown", "file", "shortvideo")


def _empty(turn: Turn) -> bool:
    """Filter: a text or voice message with nothing to read (empty recognition, only emoji)."""
    return turn.inbound.kind in ("text", "voice") and not clean(turn.text)


def _voice_empty(turn: Turn) -> bool:
    """Filter: a voice message WeChat could not recognise."""
    return turn.inbound.kind == "voice" and not clean(turn.text)


def to_idle(turn: Turn) -> Result | None:
    """The message is handled as in IDLE (SPEC 15); a flow waiting for a tax ID keeps waiting when
    that handling started nothing of its own (你好 / 进度 / 红字发票怎么开), so the tax ID sent next
    still completes it. A choice ends (ConversationHandler.END)."""
    result = first(STAGES[Stage.IDLE], turn.at(turn.idle()))
    if result is None or turn.state.stage is not Stage.AWAITING_TAX_ID or result[0].stage is not Stage.IDLE:
        return result
    new, actions = result
    waiting = replace(turn.state, tax_id=new.tax_id, about=new.about or turn.state.about)
    return waiting, [*actions, turn.say("tax-id-reminder")]


NOT_TEXT = [On(kind("event"), flows.event), On(kind("image"), flows.image),
            On(kind(*UNSUPPORTED), flows.unsupported), On(_empty, flows.empty)]
IDLE = [
    *NOT_TEXT,
    On(command("cancel"), flows.cancelled), On(flows.only_tax_id, flows.tax_id_first),
    On(command("identity"), flows.identity), On(command("human"), flows.human),
    On(command("status"), flows.status), On(command("forget"), flows.forget),
    On(command("help"), flows.help_), On(command("still-missing"), flows.still_missing),
    On(command("resolved"), flows.resolved), On(command("ack"), flows.acknowledged), On(always, flows.matched),
]
STAGES: dict[Stage, list[On]] = {
    Stage.IDLE: IDLE,
    Stage.AWAITING_CHOICE: [*NOT_TEXT, On(always, flows.picked), On(always, to_idle)],
    Stage.AWAITING_TAX_ID: [
        *NOT_TEXT, On(command("cancel"), flows.cancelled), On(always, flows.tax_id_given),
        On(command("confirm"), flows.confirmed), On(command("identity"), flows.identity),
        On(command("human"), flows.human), On(flows.asks_for_person, flows.human),
        On(command("tax-id-where"), flows.tax_id_where),
        On(command("forget"), flows.forget), On(command("ack"), flows.acknowledged),
        On(flows.tries_tax_id, flows.ask_again), On(always, to_idle),
    ],
    Stage.HUMAN: [
        On(kind("event"), human.event), On(kind("image"), human.image),
        On(kind(*UNSUPPORTED), flows.unsupported), On(_voice_empty, flows.empty),
        On(command("leave"), human.leave), On(command("status"), flows.status),
        On(command("human"), human.again), On(always, human.faq), On(always, human.forward),
    ],
}
# How long each stage may stay silent, and what its TIMEOUT handler does (None: end silently).
TIMEOUTS = {
    Stage.AWAITING_TAX_ID: ("flow_seconds", None),
    Stage.AWAITING_CHOICE: ("flow_seconds", None),
    Stage.HUMAN: ("human_idle_seconds", human.timed_out),
}


@dataclass(frozen=True)
class Conversation:
    """The dialogue with its limits (from the config); `step` is pure."""

    limits: Limits = field(default_factory=Limits)

    def step(self, state: Session, inbound: Inbound, kb: KnowledgeBase, now: float,
             ticket: TicketView | None = None) -> Result:
        """Handle one inbound message: the new session state and the actions for the caller.

        `ticket` is the desk's view of a live conversation's ticket (Stage.HUMAN), when known.
        """
        turn = Turn.of(state, inbound, kb, now, self.limits, ticket)
        ended, before = self._ended(turn)
        if ended is not None:
            turn = turn.at(ended)
        result = first(STAGES[turn.state.stage], turn)
        assert result is not None, "every stage table ends with a catch-all handler"
        new, actions = result
        return replace(new, updated_at=now), [*before, *actions]

    def _ended(self, turn: Turn) -> tuple[Session | None, list]:
        """The state after a timeout or a closed ticket (and what to say), or (None, [])."""
        state = turn.state
        if state.stage is Stage.HUMAN and turn.ticket is not None and not turn.ticket.open:
            return human.closed(turn)
        last = max(state.updated_at, turn.ticket.ops_at if turn.ticket else 0.0)
        if state.stage in TIMEOUTS:
            limit, handler = TIMEOUTS[state.stage]
            if turn.now - last > getattr(self.limits, limit):
                return handler(turn) if handler else (turn.idle(), [])
        if state.about and turn.now - state.updated_at > self.limits.flow_seconds:
            return replace(state, about=""), []
        return None, []


DEFAULT = Conversation()


def step(state: Session, inbound: Inbound, kb: KnowledgeBase, now: float,
         ticket: TicketView | None = None) -> Result:
    """Handle one inbound message with the default limits (see Conversation.step)."""
    return DEFAULT.step(state, inbound, kb, now, ticket)
