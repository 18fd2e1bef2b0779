"""The ops console's persistence as small protocols: operator accounts, server-side sessions, the
login throttle, the ticket audit trail (who did what), ticket search and the insight figures.

SqlStore implements them all (bot/store/sql_console.py); RedisState forwards them to SQL.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from bot.model import Ticket


@dataclass(frozen=True)
class Operator:
    """An ops account kept in the store (accounts may also come from the config)."""

    name: str
    password_hash: str  # werkzeug.security format, never a plaintext password
    created_at: float = 0.0


@dataclass(frozen=True)
class ConsoleSession:
    """A logged-in browser: found by the hash of its cookie token."""

    operator: str
    csrf: str
    created_at: float
    last_seen: float


@dataclass(frozen=True)
class TicketQuery:
    """What the ticket list asks for: filters, a search text and one page."""

    text: str = ""  # ticket number, tax ID (or part of it) or the customer's words
    status: str | None = None  # open | resolved | None (all, open first)
    kind: str | None = None  # channel | human | None
    intent: str | None = None
    since: float | None = None  # created_at >= since
    until: float | None = None  # created_at < until
    offset: int = 0
    limit: int = 20


@dataclass(frozen=True)
class TicketPage:
    """One page of tickets (open first, newest first) and how many match in all."""

    tickets: list[Ticket] = field(default_factory=list)
    total: int = 0


class OperatorAccounts(Protocol):
    """Ops accounts added with `python -m bot ops-user add NAME --store`."""

    def put_operator(self, name: str, password_hash: str, now: float) -> None:
        """Create the account or set its password."""

    def get_operator(self, name: str) -> Operator | None:
        """The account, or None."""

    def list_operators(self) -> list[Operator]:
        """Every stored account, by name."""

    def remove_operator(self, name: str) -> bool:
        """Delete the account and end its sessions; False when there was none."""


class ConsoleSessions(Protocol):
    """Server-side console sessions: logout ends them for real."""

    def open_console_session(self, token_hash: str, operator: str, csrf: str, now: float) -> None:
        """Remember a new logged-in browser."""

    def console_session(self, token_hash: str, now: float, idle_seconds: float,
                        max_age: float) -> ConsoleSession | None:
        """The live session, or None (an idle or too old one is deleted); marks it seen at `now`."""

    def close_console_session(self, token_hash: str) -> None:
        """Log this browser out."""

    def close_operator_sessions(self, operator: str) -> int:
        """Log the operator out everywhere; how many sessions ended."""


class LoginThrottle(Protocol):
    """Failed logins per scope ("account:NAME", "address:IP") within a sliding window."""

    def record_login_failure(self, scopes: tuple[str, ...], now: float, forget_before: float) -> None:
        """Count one failure for each scope; failures older than `forget_before` are dropped."""

    def login_failures(self, scopes: tuple[str, ...], since: float) -> dict[str, list[float]]:
        """Times of each scope's failures since `since`, oldest first (scopes without any omitted)."""

    def clear_login_failures(self, scopes: tuple[str, ...]) -> None:
        """Forget the scopes' failures (after a good login)."""


class TicketAudit(Protocol):
    """Ticket history with who did what."""

    def add_ticket_event(self, ticket_id: int, now: float, kind: str, detail: str = "", actor: str = "",
                         outbox: list[dict] = ()) -> Ticket | None:
        """Append an event (a reply, a note …) and queue `outbox` in one transaction; None if unknown."""

    def reopen_ticket(self, ticket_id: int, now: float, actor: str = "") -> Ticket | None:
        """Open a resolved ticket again (no-op when open); None if unknown."""


class TicketSearch(Protocol):
    """The console's ticket list."""

    def search_tickets(self, query: TicketQuery) -> TicketPage:
        """Tickets matching the query, open first, newest first, one page."""


class InsightRows(Protocol):
    """Raw figures for the insight page and `python -m bot report`, within [since, until)."""

    def insight_rows(self, since: float, until: float, top: int = 10) -> dict:
        """{"tickets": [(created_at, resolved_at|None)], "resolved": [(created_at, resolved_at)],
        "hits": [(at, intent)], "clarified": [at], "unanswered": [at],
        "top_unanswered": [{"text", "count", "last_at"}]}."""


class ConsoleStore(OperatorAccounts, ConsoleSessions, LoginThrottle, TicketAudit, TicketSearch,
                   InsightRows, Protocol):
    """Everything the console needs beyond the core Store."""
