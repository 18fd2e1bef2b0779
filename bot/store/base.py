"""The store contract: every piece of state the bot keeps lives behind these methods."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from bot.model import Session, Ticket


@dataclass(frozen=True)
class Claim:
    """Outcome of claiming an inbound message key for processing."""

    status: str  # "new" (caller must process) | "done" (reply stored) | "busy" (another worker has it)
    reply: str | None = None  # the stored reply when status == "done"


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


@dataclass(frozen=True)
class TurnRecord:
    """What handling one message writes at its end, in one transaction."""

    user: str
    now: float
    key: str = ""  # dedupe key; "" = none (CLI)
    reply: str = ""
    session: Session | None = None  # the new conversation state; None = leave as is
    end_session: bool = False  # delete the conversation state instead (unsubscribe)
    lines: tuple[tuple[str, str], ...] = ()  # transcript lines (direction "in"/"out", text)
    hits: tuple[str, ...] = ()  # answered intents
    unanswered: tuple[str, ...] = ()  # questions nothing answered
    clarified: tuple[str, ...] = ()  # questions answered with "did you mean 1 or 2"


class Store:
    """Abstract store. SqlStore implements all of it; RedisState overrides the hot parts."""

    # -- dedupe of WeChat retries (atomic across workers) --
    def claim_message(self, key: str, now: float, lease: float = 4.0) -> Claim:
        """Claim `key`; a claim older than `lease` without a reply may be taken over."""
        raise NotImplementedError

    def finish_message(self, key: str, reply: str, now: float) -> None:
        """Store the reply for `key` so retries get the same answer."""
        raise NotImplementedError

    def purge_messages(self, older_than: float) -> int:
        """Delete processed-message rows older than the given epoch time."""
        raise NotImplementedError

    # -- one message's reads and writes, batched (the hot path) --
    def begin_turn(self, key: str, user: str, now: float, lease: float = 4.0) -> tuple[Claim, Session, bool]:
        """Claim the message and, when it is ours, load the user's session and held flag."""
        claim = self.claim_message(key, now, lease)
        if claim.status != "new":
            return claim, Session(), False
        return (claim, *self.load_turn(user))

    def load_turn(self, user: str) -> tuple[Session, bool]:
        """The user's session and whether held customer messages wait for their next reply."""
        raise NotImplementedError

    def finish_turn(self, turn: TurnRecord) -> None:
        """Write a handled message's outcome in one transaction: reply (dedupe), state,
        transcript, analytics."""
        raise NotImplementedError

    def has_held(self, user: str) -> bool:
        """True when customer messages are held for this user's next passive reply."""
        raise NotImplementedError

    # -- conversation state + remembered tax ID --
    def load_session(self, user: str) -> Session:
        """Conversation state merged with the user's remembered tax ID."""
        raise NotImplementedError

    def save_session(self, user: str, session: Session) -> None:
        """Persist the conversation state (not the tax ID: see remember_tax_id)."""
        raise NotImplementedError

    def end_session(self, user: str) -> None:
        """Delete the conversation state."""
        raise NotImplementedError

    def remember_tax_id(self, user: str, tax_id: str) -> None:
        """Remember the customer's tax ID."""
        raise NotImplementedError

    def forget_tax_id(self, user: str) -> None:
        """Forget the customer's tax ID."""
        raise NotImplementedError

    # -- transcript --
    def log_message(self, user: str, direction: str, text: str, now: float) -> None:
        """Append one line ("in"/"out") to the user's transcript."""
        raise NotImplementedError

    def recent_messages(self, user: str, limit: int = 10) -> list[dict]:
        """Last `limit` transcript lines, oldest first: {"direction", "text", "at"}."""
        raise NotImplementedError

    # -- tickets + outbox --
    def create_ticket(self, ticket: Ticket, source_key: str,
                      outbox: list[dict] | Callable[[Ticket], list[dict]]) -> tuple[Ticket, bool]:
        """Insert the ticket and its outbox rows in one transaction, idempotent on source_key.

        Returns (ticket, created): a second call with the same source_key returns the
        first ticket and False, and queues nothing. Outbox dicts: target, user, payload.
        `outbox` may be a callable given the inserted ticket (with its id) that returns the
        rows, so a notification can name the ticket number; it runs inside the transaction.
        """
        raise NotImplementedError

    def get_ticket(self, ticket_id: int) -> Ticket | None:
        """One ticket or None."""
        raise NotImplementedError

    def list_tickets(self, status: str | None = None, user: str | None = None) -> list[Ticket]:
        """Tickets, newest first, optionally filtered."""
        raise NotImplementedError

    def resolve_ticket(self, ticket_id: int, now: float, outbox: list[dict], actor: str = "") -> Ticket | None:
        """Mark resolved and queue `outbox` in the same transaction; no-op if already resolved."""
        raise NotImplementedError

    def attach_to_ticket(self, ticket_id: int, media: str, now: float, outbox: list[dict]) -> Ticket:
        """Attach a media reference, reopen if resolved, queue `outbox`; one transaction."""
        raise NotImplementedError

    def ticket_events(self, ticket_id: int) -> list[dict]:
        """History of a ticket: {"at", "kind", "detail", "actor"} ("" = the bot or the customer)."""
        raise NotImplementedError

    def queue_message(self, row: dict, ticket_id: int | None, now: float) -> int:
        """Queue one outbox row (target, user, payload) outside ticket creation; returns its id."""
        raise NotImplementedError

    def claim_outbox(self, now: float, limit: int = 10, target: str | None = None) -> list[OutboxRow]:
        """Atomically move due pending rows to `sending`; no row is ever claimed twice."""
        raise NotImplementedError

    def outbox_sent(self, row_id: int, now: float) -> None:
        """Mark a row delivered."""
        raise NotImplementedError

    def outbox_retry(self, row_id: int, next_at: float, error: str) -> None:
        """Back to pending, due at next_at, attempts + 1."""
        raise NotImplementedError

    def outbox_dead(self, row_id: int, error: str) -> None:
        """Give up on a row after repeated permanent failures (kept, visible in /metrics)."""
        raise NotImplementedError

    def outbox_hold(self, row_id: int, error: str) -> None:
        """Customer window closed: keep for delivery with the customer's next passive reply."""
        raise NotImplementedError

    def take_held(self, user: str, now: float) -> list[OutboxRow]:
        """Atomically take (mark sent) the user's held customer messages."""
        raise NotImplementedError

    def requeue_stale_sending(self, older_than: float) -> int:
        """Rows stuck in `sending` (a killed worker) go back to pending."""
        raise NotImplementedError

    # -- analytics for authors --
    def log_unanswered(self, user: str, text: str, now: float) -> None:
        """Record a question nothing answered."""
        raise NotImplementedError

    def log_hit(self, intent: str, now: float) -> None:
        """Count an answered intent."""
        raise NotImplementedError

    def report(self) -> dict:
        """{"unanswered": [{"text", "count", "last_at"}], "hits": {intent: n}, "tickets": {status: n},
        "outbox": {"target:status": n}}."""
        raise NotImplementedError

    # -- shared tokens (access_token across workers) --
    def get_token(self, name: str, now: float) -> str | None:
        """A cached token that is still valid at `now`, else None."""
        raise NotImplementedError

    def put_token(self, name: str, value: str, expires_at: float) -> None:
        """Cache a token until expires_at."""
        raise NotImplementedError
