"""One turn of the conversation as the stage handlers see it, and the helpers they share."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

from bot.conversation.recognise import recognise
from bot.kb import KnowledgeBase
from bot.model import SESSION_TTL_SECONDS, Action, Inbound, Reply, Session, TicketView
from bot.taxid import find_tax_id, remove_tax_id
from bot.understanding.textnorm import clean

Result = tuple[Session, list[Action]]

HUMAN_IDLE_SECONDS = 60 * 60  # default [handoff] idle_minutes: a live conversation silent this long ends
ACK_QUIET_SECONDS = 120  # in a live conversation, "passed on" is said again only after this much quiet


@dataclass(frozen=True)
class Limits:
    """How long stages live; the service builds it from the config ([handoff] idle_minutes)."""

    flow_seconds: float = SESSION_TTL_SECONDS  # a tax-ID or choice flow, and what a conversation is about
    human_idle_seconds: float = HUMAN_IDLE_SECONDS
    ack_quiet_seconds: float = ACK_QUIET_SECONDS


@dataclass(frozen=True)
class Turn:
    """A message in context: the state it meets, the knowledge base, the time, what it says."""

    state: Session
    inbound: Inbound
    kb: KnowledgeBase
    now: float
    limits: Limits = field(default_factory=Limits)
    ticket: TicketView | None = None  # the desk's view of a live conversation's ticket
    text: str = ""  # the stripped text (Content or voice Recognition)
    command: str | None = None  # what recognise() says the text is, in this stage

    @classmethod
    def of(cls, state: Session, inbound: Inbound, kb: KnowledgeBase, now: float, limits: Limits,
           ticket: TicketView | None = None) -> "Turn":
        """A turn with the text stripped and recognised for the state's stage."""
        text = (inbound.text or "").strip() if inbound.kind in ("text", "voice") else ""
        command = recognise(text, state.stage) if clean(text) else None
        return cls(state, inbound, kb, now, limits, ticket, text, command)

    def at(self, state: Session) -> "Turn":
        """The same message meeting another state (its stage's commands recognised again)."""
        return Turn.of(state, self.inbound, self.kb, self.now, self.limits, self.ticket)

    def keep(self) -> Session:
        """The same state, touched now."""
        return replace(self.state, updated_at=self.now)

    def idle(self) -> Session:
        """Back to IDLE, keeping the remembered tax ID and what the conversation is about."""
        return Session(tax_id=self.state.tax_id, about=self.state.about, updated_at=self.now)

    def say(self, name: str, **variables) -> Reply:
        """A reply rendered from answers/texts/<name>.md."""
        return Reply(self.kb.render(name, **variables))

    def match(self):
        """The matcher's verdict on the text without the tax ID it may contain (cached per turn)."""
        if "_match" not in self.__dict__:
            text = remove_tax_id(self.text) if find_tax_id(self.text).found else self.text
            object.__setattr__(self, "_match", self.kb.matcher.match(text))
        return self.__dict__["_match"]


@dataclass(frozen=True)
class On:
    """A stage handler: when `when(turn)` holds, `run(turn)` answers it (None: try the next one)."""

    when: Callable[[Turn], bool]
    run: Callable[[Turn], Result | None]


def command(name: str) -> Callable[[Turn], bool]:
    """Filter: the text is the command `name` (bot.conversation.recognise)."""
    return lambda turn: turn.command == name


def kind(*kinds: str) -> Callable[[Turn], bool]:
    """Filter: the message is of one of these kinds."""
    return lambda turn: turn.inbound.kind in kinds


def always(turn: Turn) -> bool:
    """Filter: any message."""
    return True


def first(handlers: list[On], turn: Turn) -> Result | None:
    """The result of the first handler that accepts the turn and answers it."""
    for handler in handlers:
        if handler.when(turn):
            result = handler.run(turn)
            if result is not None:
                return result
    return None
