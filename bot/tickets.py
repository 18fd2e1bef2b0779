"""Ticket desk: what ops do to tickets (resolve, reply) and the messages that go with it."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from bot.kb import KnowledgeBase
from bot.model import Ticket
from bot.store.base import Store

ROBOT_LIMIT_BYTES = 4096
RECENT_TICKET_SECONDS = 7 * 24 * 3600  # an image within a week of a resolved ticket reopens it
_MARKDOWN_SPECIAL = str.maketrans({
    "<": "＜", ">": "＞", "[": "［", "]": "］", "*": "＊", "`": "｀", "#": "＃", "_": "＿",
    "\\": "＼", "\n": " ", "\r": " ",
})


def markdown_safe(text: str, limit: int = 500) -> str:
    """Customer text made inert for WeCom markdown (no links, tags or headings), on one line."""
    text = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "", text).translate(_MARKDOWN_SPECIAL)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def markdown_url(url: str) -> str:
    """A customer-supplied URL safe inside a markdown link target: http(s) only, and every
    character that could end the link or start markup percent-encoded; anything else is "#"."""
    url = re.sub(r"[\x00-\x20\x7f]", "", url)
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return "#"
    if scheme not in ("http", "https"):
        return "#"
    return quote(url, safe="/:?#=&%+,;@!$*~.-_")


def fit_bytes(text: str, limit: int, note: str = "\n…（已截断，见控制台）") -> str:
    """Cut text at a line boundary so that it (plus note) fits in `limit` UTF-8 bytes."""
    if len(text.encode("utf-8")) <= limit:
        return text
    budget = limit - len(note.encode("utf-8"))
    kept: list[str] = []
    used = 0
    for line in text.split("\n"):
        size = len(line.encode("utf-8")) + 1
        if used + size > budget:
            break
        kept.append(line)
        used += size
    return "\n".join(kept) + note


def console_url(public_url: str, ticket_id: int | None = None) -> str:
    """Link to the ops console, or to one ticket in it."""
    base = public_url.rstrip("/") + "/ops/"
    return base if ticket_id is None else f"{base}tickets/{ticket_id}"


def format_time(at: float) -> str:
    """Local wall-clock time for ops messages (server timezone)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def ops_notification(kb: KnowledgeBase, ticket: Ticket, public_url: str,
                     transcript: list[dict] = ()) -> dict:
    """Outbox row (target ops) announcing a new ticket in the WeCom group."""
    lines = [{"direction": m["direction"], "text": markdown_safe(m["text"], 200)} for m in transcript]
    text = kb.render("ops-notify", ticket=ticket.number, tax_id=ticket.tax_id, flags=list(ticket.flags),
                     words=markdown_safe(ticket.words), time=format_time(ticket.created_at),
                     console_url=console_url(public_url, ticket.id), kind=ticket.kind,
                     user=markdown_safe(ticket.user, 64), transcript=lines)
    return {"target": "ops", "user": "", "payload": {"markdown": fit_bytes(text, ROBOT_LIMIT_BYTES)}}


def customer_message(ticket: Ticket, text: str) -> dict:
    """Outbox row (target customer): a customer-service message (WeCom users: next reply)."""
    return {"target": "customer", "user": ticket.user, "payload": {"text": text, "channel": ticket.channel}}


@dataclass(frozen=True)
class TicketDesk:
    """Operations on tickets shared by the console and the CLI."""

    kb: KnowledgeBase
    store: Store
    public_url: str = ""
    ops_enabled: bool = True

    def resolve(self, ticket_id: int, now: float | None = None) -> Ticket | None:
        """Mark done; a channel ticket queues FAQ step 3 for the customer. None if unknown."""
        ticket = self.store.get_ticket(ticket_id)
        if ticket is None:
            return None
        outbox = []
        if ticket.kind == "channel" and ticket.status != "resolved":
            text = self.kb.render("ops-done", ticket=ticket.number, tax_id=ticket.tax_id)
            outbox.append(customer_message(ticket, text))
        return self.store.resolve_ticket(ticket_id, now or time.time(), outbox)

    def reply(self, ticket_id: int, text: str, now: float | None = None) -> Ticket | None:
        """Queue an ops reply to the ticket's customer (console); None if unknown ticket."""
        ticket = self.store.get_ticket(ticket_id)
        if ticket is None or not text.strip():
            return None
        message = self.kb.render("ops-reply", text=text.strip())
        self.store.queue_message(customer_message(ticket, message), ticket_id, now or time.time())
        return ticket

    def attach_image(self, user: str, media_id: str, pic_url: str, now: float) -> Ticket | None:
        """Attach to the user's open or recently resolved ticket (reopening it) and tell ops."""
        ticket = self.recent_ticket(user, now)
        if ticket is None:
            return None
        outbox = []
        if self.ops_enabled:
            text = self.kb.render("ops-image", ticket=ticket.number, pic_url=markdown_url(pic_url),
                                  console_url=console_url(self.public_url, ticket.id))
            outbox.append({"target": "ops", "user": "", "payload": {"markdown": text}})
        return self.store.attach_to_ticket(ticket.id, pic_url or media_id, now, outbox)

    def recent_ticket(self, user: str, now: float) -> Ticket | None:
        """The user's newest open ticket, else one resolved within RECENT_TICKET_SECONDS."""
        tickets = self.store.list_tickets(user=user)
        for ticket in tickets:
            if ticket.status != "resolved":
                return ticket
        for ticket in tickets:
            if ticket.resolved_at and now - ticket.resolved_at <= RECENT_TICKET_SECONDS:
                return ticket
        return None


def ticket_row(ticket: Ticket) -> dict:
    """JSON-ready ticket (the CLI's `tickets list --json` contract)."""
    return {
        "id": ticket.id, "number": ticket.number, "status": ticket.status, "tax_id": ticket.tax_id,
        "user": ticket.user, "intent": ticket.intent, "kind": ticket.kind, "flags": list(ticket.flags),
        "words": ticket.words, "channel": ticket.channel, "created_at": ticket.created_at,
        "resolved_at": ticket.resolved_at, "attachments": list(ticket.attachments),
    }
