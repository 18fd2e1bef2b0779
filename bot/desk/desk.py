"""The ticket desk: what happens to tickets — opened once per need, a live conversation's lines,
images, ops replies and resolving — and the truthful status line for each ops action.

What a ticket tells the customer and ops comes from its FAQ's front matter (`handoff:` texts,
found by the ticket's intent); nothing here knows a particular FAQ.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Callable

from bot.kb import KnowledgeBase
from bot.model import Ticket, TicketView
from bot.store.base import Conversations, Outbox, Store, Tickets, TurnWriter
from bot.tickets import customer_message, ops_notification, ops_update, update_line

log = logging.getLogger(__name__)

RECENT_TICKET_SECONDS = 7 * 24 * 3600  # an image within a week of a resolved ticket reopens it
CUSTOMER_WINDOW_SECONDS = 48 * 3600  # WeChat accepts customer-service messages this long after theirs
COALESCE_SECONDS = 30.0  # default [handoff] ops_update_seconds: ≤ 2 updates/min per ticket (robot: 20/min)


@dataclass(frozen=True)
class Outcome:
    """What an ops action did: `outcome` (resolved | queued | held | already-resolved | empty |
    unknown | noted) and the line to show ops, from answers/texts/desk-status.md."""

    ticket: Ticket | None
    outcome: str
    line: str


@dataclass
class TicketDesk:
    """Ticket operations shared by the service, the console, the CLI and WeCom ops replies.

    `push_channels`: the customer channels with a push API configured (else messages wait for the
    customer's next reply); `wecom_ops`: ops can answer from the WeCom app (named in ops messages).
    """

    kb: KnowledgeBase
    tickets: Tickets
    outbox: Outbox
    conversations: Conversations
    recent_lines: Callable[[str, int], list[dict]]  # (user, n) → their last transcript lines
    public_url: str = ""
    ops_enabled: bool = True
    push_channels: frozenset[str] = frozenset({"wechat", "wecom"})
    wecom_ops: bool = False
    clock: Callable[[], float] = time.time
    fetch_media: Callable[[str, str], tuple[str, bytes]] | None = None  # (channel, media_id) → file
    coalesce_seconds: float = COALESCE_SECONDS  # an ops update waits this long for more lines

    @classmethod
    def of(cls, kb: KnowledgeBase, store: Store, public_url: str = "", ops_enabled: bool = True,
           **options) -> "TicketDesk":
        """A desk on the store's parts."""
        return cls(kb, store.tickets, store.outbox, store.conversations, store.turns.recent_messages,
                   public_url, ops_enabled, **options)

    def within(self, tx: TurnWriter) -> "TicketDesk":
        """The same desk working inside a message's open transaction."""
        return replace(self, tickets=tx.tickets, outbox=tx.outbox, conversations=tx.conversations)

    # -- from the customer's side (the service's performers) --------------------------------

    def open_ticket(self, draft: Ticket, source_key: str, transcript: list[dict]) -> tuple[Ticket, str]:
        """A new ticket with its ops notification ("created"), or the customer's open one for the
        same need — intent and tax ID — which gets their words and a coalesced line ("joined");
        "retry" when this very message opened it before."""
        def notify(saved: Ticket) -> list[dict]:
            """The ops notification of the new ticket (none without ops)."""
            if not self.ops_enabled:
                return []
            return [ops_notification(self.kb, saved, self.public_url, transcript, self.wecom_ops)]
        ticket, how = self.conversations.open_or_join(draft, source_key, notify)
        if how == "joined":
            self._customer_line(ticket, draft.words, draft.created_at, source_key)
        return ticket, how

    def forward(self, user: str, intent: str, text: str, answered: str, source_key: str,
                now: float) -> Ticket | None:
        """A message of a live conversation: onto its ticket and, coalesced, to ops."""
        ticket = self.open_ticket_for(user, intent)
        if ticket is None:
            return None
        if self._customer_line(ticket, text, now, source_key) and answered in self.kb.intents:
            note = self.kb.render("desk-note", event="answered", title=self.kb.intents[answered].title)
            self._line(ticket, "bot", "bot", note, now)
        return ticket

    def end_conversation(self, user: str, intent: str, reason: str, now: float) -> Ticket | None:
        """The live conversation ended: the customer left (the ticket closes) or it went idle."""
        ticket = self.open_ticket_for(user, intent)
        if ticket is None:
            return None
        note = self.kb.render("desk-note", event=f"ended-{reason}", title="")
        self._line(ticket, "note", "bot", note, now)
        if reason == "customer":
            self.tickets.resolve(ticket.id, now, [])
        return ticket

    def attach_image(self, user: str, channel: str, media_id: str, pic_url: str, about: str,
                     now: float) -> tuple[Ticket, int] | None:
        """Attach to the ticket the conversation is about (`about`: an intent), else the user's newest
        open or recently resolved ticket; reopen it and tell ops with a link to the stored image."""
        ticket = self.ticket_about(user, about, now) or self.recent_ticket(user, now)
        if ticket is None:
            return None
        ticket, attachment_id, reopened = self.conversations.attach_media(ticket.id, media_id, pic_url, channel, now)
        if self.ops_enabled:
            note = self.kb.render("desk-note", event="image", title="")
            line = update_line("customer", note, now, self.attachment_url(attachment_id))
            self._queue_update(ticket, line, now, reopened)
        return ticket, attachment_id

    # -- from ops' side (console, CLI, WeCom app) ---------------------------------------------

    def resolve(self, ticket_id: int, now: float | None = None, actor: str = "") -> Outcome:
        """Mark done and send the customer the FAQ's `done` text; says if it was done already."""
        now = now or self.clock()
        ticket = self.tickets.get(ticket_id)
        if ticket is None:
            return self._outcome(None, "resolve", "unknown", f"#{ticket_id}")
        if ticket.status == "resolved":
            return self._outcome(ticket, "resolve", "already-resolved")
        done = self.kb.part(ticket.intent, "handoff.done", ticket=ticket.number, tax_id=ticket.tax_id)
        text = self.kb.render("ops-done", ticket=ticket.number, tax_id=ticket.tax_id, done=done)
        held = self._must_hold(ticket, now)
        resolved = self.conversations.resolve_with_message(ticket_id, now, actor or "ops", text,
                                                   [customer_message(ticket, text, held)])
        if resolved is None:  # another ops member was quicker
            return self._outcome(ticket, "resolve", "already-resolved")
        return self._outcome(resolved, "resolve", "held" if held else "queued")

    def reply(self, ticket_id: int, text: str, now: float | None = None, actor: str = "") -> Outcome:
        """Send the customer an ops reply (recorded with who sent it); held when it cannot go out now."""
        now = now or self.clock()
        ticket = self.tickets.get(ticket_id)
        if ticket is None:
            return self._outcome(None, "reply", "unknown", f"#{ticket_id}")
        if not text.strip():
            return self._outcome(ticket, "reply", "empty")
        message = self.kb.render("ops-reply", text=text.strip())
        held = self._must_hold(ticket, now)
        self.conversations.add_ticket_message(ticket_id, "ops", actor or "ops", text.strip(), now,
                                      [customer_message(ticket, message, held)])
        return self._outcome(ticket, "reply", "held" if held else "queued")

    def note(self, ticket_id: int, text: str, now: float | None = None, actor: str = "") -> Outcome:
        """An internal note on a ticket (the customer never sees it)."""
        ticket = self.tickets.get(ticket_id)
        if ticket is None:
            return self._outcome(None, "note", "unknown", f"#{ticket_id}")
        if not text.strip():
            return self._outcome(ticket, "note", "empty")
        self.conversations.add_ticket_message(ticket_id, "note", actor or "ops", text.strip(), now or self.clock())
        return self._outcome(ticket, "note", "noted")

    def reopen(self, ticket_id: int, now: float | None = None, actor: str = "") -> Ticket | None:
        """Open a resolved ticket again; None if unknown."""
        return self.tickets.reopen(ticket_id, now or self.clock(), actor=actor)

    def delivery_held(self, ticket_id: int | None, code: int | None) -> None:
        """WeChat refused a message of this ticket (48 h window, quota …): ops hear it plainly, in the
        ticket's coalesced update; it goes out with the customer's next message."""
        ticket = self.tickets.get(ticket_id) if ticket_id else None
        if ticket is None or not self.ops_enabled:
            return
        note = self.kb.render("desk-note", event="held", title=str(code or ""))
        self._queue_update(ticket, update_line("note", note, self.clock()), self.clock())

    def delivery_label(self, status: str) -> str:
        """What a message's delivery status means, for ops (sent / held / dead / pending)."""
        return self.kb.render("desk-status", action="delivery", outcome=status, ticket="")

    # -- lookups ---------------------------------------------------------------------------------

    def open_ticket_for(self, user: str, intent: str) -> Ticket | None:
        """The user's newest open ticket for `intent`."""
        return next((t for t in self.tickets.list(status="open", user=user) if t.intent == intent), None)

    def conversation_view(self, user: str, intent: str) -> TicketView:
        """What the dialogue needs to know about a live conversation's ticket."""
        ticket = self.open_ticket_for(user, intent)
        if ticket is None:
            return TicketView(open=False)
        return TicketView(open=True, ops_at=self.conversations.last_ops_message_at(ticket.id))

    def ticket_about(self, user: str, intent: str, now: float) -> Ticket | None:
        """The user's ticket for `intent`: open, else resolved within RECENT_TICKET_SECONDS."""
        if not intent:
            return None
        return self._pick([t for t in self.tickets.list(user=user) if t.intent == intent], now)

    def recent_ticket(self, user: str, now: float) -> Ticket | None:
        """The user's newest open ticket, else one resolved within RECENT_TICKET_SECONDS."""
        return self._pick(self.tickets.list(user=user), now)

    @staticmethod
    def _pick(tickets: list[Ticket], now: float) -> Ticket | None:
        """The newest open ticket of the list, else the newest recently resolved one."""
        for ticket in tickets:
            if ticket.status != "resolved":
                return ticket
        for ticket in tickets:
            if ticket.resolved_at and now - ticket.resolved_at <= RECENT_TICKET_SECONDS:
                return ticket
        return None

    def attachment_url(self, attachment_id: int) -> str:
        """The console link that shows a stored image (login required)."""
        return f"{self.public_url.rstrip('/')}/ops/attachments/{attachment_id}"

    def attachment(self, attachment_id: int) -> tuple[str, bytes] | None:
        """(content type, bytes) of an image: kept, or fetched now with the media API and kept."""
        found = self.conversations.attachment_file(attachment_id)
        if found is None:
            return None
        if found.data is not None:
            return found.content_type or "application/octet-stream", found.data
        return self.download(attachment_id, found.channel, found.media_id)

    def download(self, attachment_id: int, channel: str, media_id: str) -> tuple[str, bytes] | None:
        """Fetch an image with the media API (media/get) and keep it; None (logged) on failure."""
        if self.fetch_media is None or not media_id or channel not in self.push_channels:
            return None  # no media API for this channel (e.g. the terminal chat)
        try:
            content_type, data = self.fetch_media(channel, media_id)
        except Exception as exc:  # noqa: BLE001 - a failed download is retried when ops look
            log.warning("media: attachment %d not fetched: %s", attachment_id, exc)
            self.conversations.attachment_fetch_failed(attachment_id, str(exc))
            return None
        self.conversations.store_attachment_file(attachment_id, content_type, data, self.clock())
        log.info("media: attachment %d kept (%d bytes)", attachment_id, len(data))
        return content_type, data

    # -- helpers ---------------------------------------------------------------------------------

    def _customer_line(self, ticket: Ticket, text: str, now: float, source_key: str) -> bool:
        """The customer's words on the ticket and, coalesced, to ops; False for a retried message."""
        saved = self.conversations.add_ticket_message(ticket.id, "customer", ticket.user, text, now,
                                              source_key=source_key or None)
        if saved is not None and self.ops_enabled:
            self._queue_update(ticket, update_line("customer", text, now), now)
        return saved is not None

    def _line(self, ticket: Ticket, who: str, author: str, text: str, now: float) -> None:
        """A bot or note line on the ticket, also in the coalesced ops update."""
        self.conversations.add_ticket_message(ticket.id, who, author, text, now)
        if self.ops_enabled:
            self._queue_update(ticket, update_line(who, text, now), now)

    def _queue_update(self, ticket: Ticket, line: dict, now: float, reopened: bool = False) -> None:
        """Add a line to the ticket's pending ops update (one message per COALESCE_SECONDS)."""
        def build(lines: list[dict]) -> dict:
            """The update's payload with every line so far."""
            return ops_update(self.kb, ticket, lines, self.public_url, self.wecom_ops, reopened)
        self.conversations.coalesce_ops(ticket.id, line, build, now, self.coalesce_seconds)

    def _must_hold(self, ticket: Ticket, now: float) -> bool:
        """A customer message that cannot go out now: no push API for the channel, or 48 h passed."""
        if ticket.channel not in self.push_channels:
            return True
        last_in = max((m["at"] for m in self.recent_lines(ticket.user, 20)
                       if m["direction"] == "in"), default=None)
        return ticket.channel == "wechat" and last_in is not None and now - last_in > CUSTOMER_WINDOW_SECONDS

    def _outcome(self, ticket: Ticket | None, action: str, outcome: str, name: str = "") -> Outcome:
        """The outcome with its status line."""
        number = ticket.number if ticket else name
        return Outcome(ticket, outcome, self.kb.render("desk-status", action=action, outcome=outcome,
                                                       ticket=number))
