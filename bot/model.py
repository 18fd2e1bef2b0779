"""Plain data shared by every layer: inbound messages, dialogue state and actions."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


@dataclass(frozen=True)
class Stamp:
    """A callback's timestamp+nonce: good for one message until `expires_at` (the replay defence).

    A signed query authenticates only timestamp, nonce and signature, not a plaintext body, so a
    query captured from a log could carry a forged message: the store keeps which message first
    used each stamp (in the message's own transaction) until the timestamp leaves the window.
    """

    name: str  # "<channel>:<timestamp>:<nonce>"
    expires_at: float  # timestamp + the channel's tolerance


class Replay(Exception):
    """This delivery's timestamp+nonce was already used for another message."""


@dataclass(frozen=True)
class Inbound:
    """One customer message, independent of the channel it came from."""

    user: str  # WeChat openid / WeCom userid / "cli"
    kind: str  # text | voice | image | event | location | link | video | unknown
    text: str = ""  # Content, or voice Recognition
    event: str = ""  # subscribe | unsubscribe | click ... (kind == "event")
    msg_id: str = ""  # dedupe key: MsgId, or FromUserName+CreateTime for events
    created_at: float = 0.0  # epoch seconds (CreateTime)
    media_id: str = ""
    pic_url: str = ""
    channel: str = "wechat"  # wechat | wecom | cli
    stamp: Stamp | None = None  # the delivery's timestamp+nonce (None: not from a signed callback)


class Stage(str, Enum):
    """Where a conversation stands."""

    IDLE = "idle"
    AWAITING_TAX_ID = "awaiting_tax_id"
    AWAITING_CHOICE = "awaiting_choice"
    HUMAN = "human"  # a live conversation with a person: messages go to the ticket and to ops


SESSION_TTL_SECONDS = 30 * 60  # a tax-ID or choice flow ends after 30 minutes of silence (SPEC 5)
STATE_KEEP_SECONDS = 24 * 3600  # stores may drop conversation state untouched this long


@dataclass(frozen=True)
class Session:
    """Per-user dialogue state; `tax_id` is the remembered tax ID (users table)."""

    stage: Stage = Stage.IDLE
    purpose: str = ""  # intent the awaited tax ID / choice is for
    attempts: int = 0  # bad tax IDs received in this flow
    last_rejected: str = ""  # last tax ID rejected for its check digit
    choices: tuple[str, ...] = ()  # intent ids offered by a clarify question
    question: str = ""  # the customer's words that started the flow
    updated_at: float = 0.0
    tax_id: str = ""
    about: str = ""  # intent whose ticket the conversation is about (an image after "still missing")
    acked_at: float = 0.0  # HUMAN: when the customer was last told their words reached a person


# ---- actions: what `step` asks its caller to do -------------------------------------------


@dataclass(frozen=True)
class Reply:
    """Send this text to the customer; `answer_id` names the FAQ it renders (web fallback)."""

    text: str
    answer_id: str | None = None


@dataclass(frozen=True)
class CreateTicket:
    """Open a handoff ticket for an intent (its kind), unless the customer has one open for the same
    need (same intent, same tax ID): then the words are added to it. The caller replies."""

    intent: str
    words: str  # the customer's own words
    tax_id: str = ""
    flags: tuple[str, ...] = ()  # e.g. ("校验位未通过",)


@dataclass(frozen=True)
class Forward:
    """Add the customer's words to their open ticket for `intent` and pass them on to ops (coalesced);
    `answered` names an FAQ the bot answered them with, noted on the ticket."""

    intent: str
    text: str
    answered: str = ""


@dataclass(frozen=True)
class EndHuman:
    """The live conversation on the customer's `intent` ticket is over: reason "customer" (they left,
    the ticket closes) or "idle" (nobody wrote for the configured time; the ticket stays open)."""

    intent: str
    reason: str


@dataclass(frozen=True)
class RememberTaxId:
    """Store the customer's tax ID for later flows."""

    tax_id: str


@dataclass(frozen=True)
class ForgetTaxId:
    """Drop the remembered tax ID."""


@dataclass(frozen=True)
class LogUnanswered:
    """Record a question nothing answered, for FAQ authors."""

    text: str


@dataclass(frozen=True)
class LogClarified:
    """Record a question answered with "did you mean 1 or 2" (the insight page counts them)."""

    text: str


@dataclass(frozen=True)
class LogHit:
    """Count an answered intent."""

    intent: str


@dataclass(frozen=True)
class AttachImage:
    """Attach a screenshot to the customer's ticket for `about` (an intent), else to their open/recent
    ticket; the caller replies."""

    media_id: str
    pic_url: str = ""
    about: str = ""


@dataclass(frozen=True)
class ShowTickets:
    """Tell the customer the state of their tickets; the caller replies."""


@dataclass(frozen=True)
class EndSession:
    """Forget the conversation state (unsubscribe)."""


Action = (
    Reply | CreateTicket | Forward | EndHuman | RememberTaxId | ForgetTaxId | LogUnanswered | LogClarified
    | LogHit    | AttachImage | ShowTickets | EndSession
)


@dataclass(frozen=True)
class TicketView:
    """What the desk says about the ticket of a live conversation, given to the dialogue step."""

    open: bool
    ops_at: float = 0.0  # when ops last wrote to the customer on it (0: never)


@dataclass(frozen=True)
class Ticket:
    """A handoff ticket as the store returns it."""

    id: int
    user: str
    kind: str  # the intent id (tickets before issue 7: "channel" | "human")
    intent: str
    status: str  # open | resolved
    tax_id: str = ""
    flags: tuple[str, ...] = ()
    words: str = ""
    channel: str = "wechat"
    created_at: float = 0.0
    resolved_at: float | None = None
    attachments: tuple[str, ...] = field(default_factory=tuple)

    @property
    def number(self) -> str:
        """The number customers and ops see, e.g. T000042."""
        return f"T{self.id:06d}"
