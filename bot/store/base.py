"""The store contract: four small parts (turns, tickets, outbox, tokens) plus the authors' report.

Every backend (SQLite, PostgreSQL, Redis in front of either) implements these protocols and
passes the same contract tests (tests/test_store*.py). One message costs one write transaction:
`Turns.turn` reads what the dialogue needs, `Turn.commit` runs the claim, the replay check of
the delivery's timestamp+nonce, the performers' writes, state, transcript and analytics in it.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol

from bot.model import Session, Stamp, Ticket

if TYPE_CHECKING:
    from bot.store.console import ConsoleStore
    from bot.store.sql_conversation import Attachment, AttachmentFile, TicketMessage

CLAIM_LEASE_SECONDS = 4.0  # a claim older than this without a reply was lost (killed worker)
OPS_PER_MINUTE = 20  # WeCom group robot limit
OutboxRows = list[dict] | Callable[[Ticket], list[dict]]  # rows, or rows made from the inserted ticket


@dataclass(frozen=True)
class OutboxRow:
    """One message waiting to be delivered to ops (WeCom robot) or a customer (WeChat)."""

    id: int
    target: str  # "ops" | "customer"
    user: str  # customer openid for target == "customer"
    payload: dict  # ops: {"markdown": str}; customer: {"text": str}
    ticket_id: int | None
    attempts: int
    next_at: float
    status: str  # pending | sending | sent | held (customer window closed) | dead
    last_error: str = ""  # why the last try failed ("maybe delivered xN: …" after timeouts)


@dataclass(frozen=True)
class TurnRecord:
    """What handling one message leaves behind, written in the message's transaction."""

    reply: str = ""  # stored for retries ("" = answer `success`)
    session: Session | None = None  # the new conversation state; None = leave as is
    end_session: bool = False  # delete the conversation state instead (unsubscribe)
    tax_id: str | None = None  # remember this tax ID; "" forgets it; None leaves it
    lines: tuple[tuple[str, str], ...] = ()  # transcript lines (direction "in"/"out", text)
    hits: tuple[str, ...] = ()  # answered intents
    unanswered: tuple[str, ...] = ()  # questions nothing answered
    clarified: tuple[str, ...] = ()  # questions answered with "did you mean 1 or 2"


class Tickets(Protocol):
    """Handoff tickets, their history and attachments; every change queues its outbox rows with it."""

    def create(self, ticket: Ticket, source_key: str, outbox: OutboxRows) -> tuple[Ticket, bool]:
        """Insert the ticket and its outbox rows, idempotent on source_key: (ticket, created)."""

    def get(self, ticket_id: int) -> Ticket | None:
        """One ticket or None."""

    def list(self, status: str | None = None, user: str | None = None) -> list[Ticket]:
        """Tickets, newest first, optionally filtered."""

    def resolve(self, ticket_id: int, now: float, outbox: list[dict], actor: str = "") -> Ticket | None:
        """Mark resolved and queue `outbox`; no-op (nothing queued) if already resolved."""

    def reopen(self, ticket_id: int, now: float, actor: str = "") -> Ticket | None:
        """Open a resolved ticket again (no-op when open); None if unknown."""

    def add_event(self, ticket_id: int, now: float, kind: str, detail: str = "", actor: str = "",
                  outbox: list[dict] = ()) -> Ticket | None:
        """Append an event (a reply, a note …) and queue `outbox` with it; None if unknown."""

    def attach(self, ticket_id: int, media: str, now: float, outbox: list[dict]) -> Ticket:
        """Attach a media reference, reopen if resolved, queue `outbox`."""

    def events(self, ticket_id: int) -> list[dict]:
        """History of a ticket: {"at", "kind", "detail", "actor"}; actor "" = the bot or the customer,
        else an operator's account name, "cli:<login>" …"""


class Conversations(Protocol):
    """What happens on a ticket: one open ticket per need, who wrote what (with each reply's delivery),
    coalesced ops updates and the images customers sent (bytes kept). bot/store/sql_conversation.py."""

    def open_or_join(self, ticket: Ticket, source_key: str, outbox: OutboxRows) -> tuple[Ticket, str]:
        """A new ticket ("created"), the one this message opened before ("retry"), or the user's open
        ticket for the same intent and tax ID ("joined")."""

    def add_ticket_message(self, ticket_id: int, who: str, author: str, text: str, now: float,
                           outbox: list[dict] = (), source_key: str | None = None) -> TicketMessage | None:
        """Record a line (customer | ops | bot | note) and queue its rows; None if source_key was seen."""

    def ticket_messages(self, ticket_id: int) -> list[TicketMessage]:
        """A ticket's conversation, oldest first, each line with its delivery status."""

    def last_ops_message_at(self, ticket_id: int) -> float:
        """When ops last wrote to the customer on the ticket (0.0: never)."""

    def resolve_with_message(self, ticket_id: int, now: float, author: str, text: str,
                             outbox: list[dict]) -> Ticket | None:
        """Resolve and record + queue the customer's message at once; None if resolved already."""

    def coalesce_ops(self, ticket_id: int, line: dict, build: Callable[[list[dict]], dict],
                     now: float, delay: float) -> int:
        """Add a line to the ticket's pending ops update (or queue one due in `delay` s); its row id."""

    def attach_media(self, ticket_id: int, media_id: str, pic_url: str, channel: str,
                     now: float) -> tuple[Ticket, int, bool]:
        """Attach an image, reopening a resolved ticket: (ticket, attachment id, reopened)."""

    def ticket_attachments(self, ticket_id: int) -> list[Attachment]:
        """A ticket's images with whether their bytes are kept."""

    def attachment_file(self, attachment_id: int) -> AttachmentFile | None:
        """An image's bytes (when kept) and where to fetch them."""

    def store_attachment_file(self, attachment_id: int, content_type: str, data: bytes, now: float) -> None:
        """Keep an image's downloaded bytes."""

    def attachment_fetch_failed(self, attachment_id: int, error: str) -> None:
        """Note why an image could not be downloaded."""


class Outbox(Protocol):
    """Durable delivery queue: claimed atomically, so any number of workers may deliver."""

    def queue(self, row: dict, ticket_id: int | None, now: float) -> int:
        """Queue one row (target, user, payload); returns its id."""

    def claim(self, now: float, limit: int = 10, target: str | None = None, *,
              ops_per_minute: int = OPS_PER_MINUTE) -> list[OutboxRow]:
        """Move due pending rows to `sending` (ops rows within the robot's budget); never twice."""

    def sent(self, row_id: int, now: float, note: str | None = None) -> None:
        """Mark a row delivered (`note`: why it counts as such, e.g. maybe delivered twice)."""

    def retry(self, row_id: int, next_at: float, error: str) -> None:
        """Back to pending, due at next_at, attempts + 1."""

    def dead(self, row_id: int, error: str) -> None:
        """Give up on a row after repeated permanent failures (kept, visible in the report)."""

    def hold(self, row_id: int, error: str) -> None:
        """Customer window closed: keep for delivery with the customer's next passive reply."""

    def take_held(self, user: str, now: float) -> list[OutboxRow]:
        """Take (mark sent) the user's held customer messages, oldest first."""

    def requeue_stale(self, older_than: float) -> int:
        """Rows stuck in `sending` since before `older_than` (a killed worker) go back to pending."""


class TurnWriter(Protocol):
    """The open write transaction of one message, as its performers see it."""

    tickets: Tickets
    outbox: Outbox
    conversations: Conversations

    def transcript(self, limit: int) -> list[dict]:
        """The user's last `limit` transcript lines, oldest first."""


class Turn(Protocol):
    """One inbound message: what the dialogue needs to read, and the commit of its outcome."""

    status: str  # "new" (ours to process) | "done" (answered before) | "busy" (another worker has it)
    reply: str | None  # the stored reply when status == "done"
    session: Session  # the user's state with the remembered tax ID (when status == "new")
    held: bool  # customer messages wait to go out with this reply

    def commit(self, work: Callable[[TurnWriter], TurnRecord]) -> str:
        """Run `work` in the message's one write transaction and store its record; the reply.

        When another attempt at the same message committed first, `work` does not run and that
        attempt's reply is returned: its effects happen once.
        """


class Turns(Protocol):
    """Dedupe of WeChat's retries, conversation state, transcript: one message at a time."""

    def turn(self, key: str, user: str, now: float, lease: float = CLAIM_LEASE_SECONDS,
             stamp: Stamp | None = None) -> AbstractContextManager[Turn]:
        """Begin handling message `key` ("" = no dedupe) from `user`; a claim older than `lease`
        without a reply (killed worker) is taken over. `stamp` is good for this message only:
        bot.model.Replay (here or at commit) when another message used it before it expired."""

    def recent_messages(self, user: str, limit: int = 10) -> list[dict]:
        """Last `limit` transcript lines, oldest first: {"direction", "text", "at"}."""

    def purge(self, messages_before: float, now: float) -> int:
        """Forget dedupe records older than `messages_before` and stamps expired at `now`; how many."""


class Tokens(Protocol):
    """Access tokens shared by every worker."""

    def get(self, name: str, now: float) -> str | None:
        """A cached token that is still valid at `now`, else None."""

    def put(self, name: str, value: str, expires_at: float) -> None:
        """Cache a token until expires_at ("" invalidates it)."""


class Reports(Protocol):
    """What authors and /metrics read."""

    def report(self) -> dict:
        """{"unanswered": [{"text", "count", "last_at"}], "hits": {intent: n},
        "tickets": {status: n}, "outbox": {"target:status": n}}."""

    def metric_counts(self) -> dict:
        """Cheap counts for /metrics (bot.store.gauges): {"tickets", "outbox", "hits", "unanswered"}."""


@dataclass(frozen=True)
class Store:
    """The store of one deployment: its parts, and how to release them."""

    turns: Turns
    tickets: Tickets
    outbox: Outbox
    tokens: Tokens
    reports: Reports
    close: Callable[[], None]
    console: ConsoleStore  # the ops console's parts (bot/store/console.py), in SQL
    conversations: Conversations  # what happens on tickets (bot/store/sql_conversation.py), in SQL
