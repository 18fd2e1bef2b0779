"""The ops console's persistence as small protocols: operator accounts, server-side sessions, the
login throttle, ticket search and the insight figures — `store.console.<part>`.

All live in SQL (bot/store/sql_console.py), with Redis in front or not. Who did what on a ticket is
the `actor` of its events (Tickets.resolve/reopen/add_event in bot/store/base.py).
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

    def put(self, name: str, password_hash: str, now: float) -> None:
        """Create the account or set its password."""

    def get(self, name: str) -> Operator | None:
        """The account, or None."""

    def list(self) -> list[Operator]:
        """Every stored account, by name."""

    def remove(self, name: str) -> bool:
        """Delete the account and end its sessions; False when there was none."""


class ConsoleSessions(Protocol):
    """Server-side console sessions, found by the hash of the cookie: logout ends them for real."""

    def open(self, token_hash: str, operator: str, csrf: str, now: float) -> None:
        """Remember a new logged-in browser."""

    def get(self, token_hash: str, now: float, idle_seconds: float, max_age: float) -> ConsoleSession | None:
        """The live session, or None (an idle or too old one is deleted); marks it seen at `now`."""

    def close(self, token_hash: str) -> None:
        """Log this browser out."""

    def close_all(self, operator: str) -> int:
        """Log the operator out everywhere; how many sessions ended."""


class LoginThrottle(Protocol):
    """Failed logins per scope ("account:NAME", "address:IP") within a sliding window."""

    def record(self, scopes: tuple[str, ...], now: float, forget_before: float) -> None:
        """Count one failure for each scope; failures older than `forget_before` are dropped."""

    def failures(self, scopes: tuple[str, ...], since: float) -> dict[str, list[float]]:
        """Times of each scope's failures since `since`, oldest first (scopes without any omitted)."""

    def clear(self, scopes: tuple[str, ...]) -> None:
        """Forget the scopes' failures (after a good login)."""


class TicketSearch(Protocol):
    """The console's ticket list."""

    def search(self, query: TicketQuery) -> TicketPage:
        """Tickets matching the query, open first, newest first, one page."""


class InsightRows(Protocol):
    """Raw figures for the insight page and `python -m bot report`, within [since, until)."""

    def rows(self, since: float, until: float, top: int = 10) -> dict:
        """{"tickets": [(created_at, resolved_at|None)] opened in the range, "resolved": [(created_at,
        resolved_at)] resolved in it, "hits": [(at, intent)], "clarified": [at], "unanswered": [at],
        "top_unanswered": [{"text", "count", "last_at"}]}."""


@dataclass(frozen=True)
class ConsoleStore:
    """The console's parts of a store."""

    operators: OperatorAccounts
    sessions: ConsoleSessions
    throttle: LoginThrottle
    tickets: TicketSearch
    insight: InsightRows
