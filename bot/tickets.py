"""The messages around tickets: ops markdown (inert customer text), customer rows, JSON rows."""
from __future__ import annotations

import re
import time
from urllib.parse import quote, urlsplit

from bot.kb import KnowledgeBase
from bot.model import Ticket

ROBOT_LIMIT_BYTES = 4096
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


MAX_UPDATE_LINES = 20  # lines one coalesced ops update keeps (the newest); the console has them all


def _intent_texts(kb: KnowledgeBase, ticket: Ticket) -> tuple[str, bool]:
    """(label, live) of the ticket's FAQ; a ticket whose FAQ is gone keeps its intent id as label."""
    intent = kb.intents.get(ticket.intent)
    return (intent.label, intent.live) if intent else (ticket.intent, False)


def ops_notification(kb: KnowledgeBase, ticket: Ticket, public_url: str,
                     transcript: list[dict] = (), wecom: bool = False) -> dict:
    """Outbox row (target ops) announcing a new ticket in the WeCom group; its FAQ says the task."""
    lines = [{"direction": m["direction"], "text": markdown_safe(m["text"], 200)} for m in transcript]
    label, live = _intent_texts(kb, ticket)
    task = kb.part(ticket.intent, "handoff.ops", ticket=ticket.number, tax_id=ticket.tax_id,
                   words=markdown_safe(ticket.words)) if ticket.intent in kb.intents else ""
    text = kb.render("ops-notify", ticket=ticket.number, label=markdown_safe(label, 64), tax_id=ticket.tax_id,
                     flags=list(ticket.flags), words=markdown_safe(ticket.words),
                     time=format_time(ticket.created_at), console_url=console_url(public_url, ticket.id),
                     user=markdown_safe(ticket.user, 64), transcript=lines, task=task, live=live,
                     wecom=wecom)
    return {"target": "ops", "user": "", "payload": {"markdown": fit_bytes(text, ROBOT_LIMIT_BYTES)}}


def update_line(who: str, text: str, at: float, url: str = "") -> dict:
    """One line of a coalesced ops update: who (customer | bot | note), inert text, an optional link."""
    return {"time": time.strftime("%H:%M:%S", time.localtime(at)), "who": who,
            "text": markdown_safe(text, 300), "url": markdown_url(url) if url else ""}


def ops_update(kb: KnowledgeBase, ticket: Ticket, lines: list[dict], public_url: str,
               wecom: bool = False, reopened: bool = False) -> dict:
    """The payload of a ticket's coalesced ops update ("coalesce": later lines join it)."""
    label, live = _intent_texts(kb, ticket)
    kept = lines[-MAX_UPDATE_LINES:]
    text = kb.render("ops-update", ticket=ticket.number, label=markdown_safe(label, 64), live=live,
                     reopened=reopened, lines=kept, console_url=console_url(public_url, ticket.id),
                     wecom=wecom)
    return {"markdown": fit_bytes(text, ROBOT_LIMIT_BYTES), "lines": kept, "coalesce": "update",
            "reopened": reopened}


def customer_message(ticket: Ticket, text: str, held: bool = False) -> dict:
    """Outbox row (target customer): a customer-service message; `held` keeps it for their next reply."""
    row = {"target": "customer", "user": ticket.user, "payload": {"text": text, "channel": ticket.channel}}
    return row | {"status": "held"} if held else row


def ticket_row(ticket: Ticket) -> dict:
    """JSON-ready ticket (the CLI's `tickets list --json` contract)."""
    return {
        "id": ticket.id, "number": ticket.number, "status": ticket.status, "tax_id": ticket.tax_id,
        "user": ticket.user, "intent": ticket.intent, "kind": ticket.kind, "flags": list(ticket.flags),
        "words": ticket.words, "channel": ticket.channel, "created_at": ticket.created_at,
        "resolved_at": ticket.resolved_at, "attachments": list(ticket.attachments),
    }
