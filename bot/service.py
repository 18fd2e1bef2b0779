"""The caller of the dialogue: dedupe, state, side effects and the final reply for one message."""
from __future__ import annotations

import logging
import time
from typing import Callable

from bot import dialogue
from bot.kb import REPLY_LIMIT_BYTES, KnowledgeBase
from bot.model import (AttachImage, CreateTicket, EndSession, ForgetTaxId, Inbound, LogClarified,
                       LogHit, LogUnanswered, RememberTaxId, Reply, Session, ShowTickets, Ticket)
from bot.store.base import Store, TurnRecord
from bot.taxid import find_tax_id, mask_tax_id
from bot.tickets import TicketDesk, fit_bytes, ops_notification

log = logging.getLogger(__name__)

RETRY_WAIT_SECONDS = 3.5  # a retry waits this long for the first attempt's reply (WeChat allows 5 s)
CLAIM_LEASE_SECONDS = 4.0  # a claim older than this without a reply was lost (killed worker)


class BotService:
    """Handles one inbound message end to end and returns the passive reply text (or None)."""

    def __init__(self, kb: KnowledgeBase, store: Store, public_url: str = "",
                 ops_enabled: bool = True, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep):
        """Wire the knowledge base and store; clock and sleep are injectable for tests."""
        self.kb, self.store, self.public_url = kb, store, public_url
        self.ops_enabled = ops_enabled
        self.clock, self.sleep = clock, sleep
        self.desk = TicketDesk(kb, store, public_url, ops_enabled)
        self.performers = {
            Reply: self._reply, CreateTicket: self._create_ticket, RememberTaxId: self._remember,
            ForgetTaxId: self._forget, LogUnanswered: self._unanswered, LogHit: self._hit,
            LogClarified: self._clarified,
            AttachImage: self._attach, ShowTickets: self._show_tickets, EndSession: self._end,
        }

    def handle(self, inbound: Inbound) -> str | None:
        """Reply to a message exactly once: a retry of the same message gets the same reply."""
        if not inbound.msg_id:
            return self._process(inbound, "", *self.store.load_turn(inbound.user))
        key = f"{inbound.channel}:{inbound.msg_id}"
        claim, session, has_held = self.store.begin_turn(key, inbound.user, self.clock(), CLAIM_LEASE_SECONDS)
        if claim.status == "done":
            log.info("dedupe: retry of %s answered from store", key)
            return claim.reply or None
        if claim.status == "busy":
            return self._wait_for_reply(inbound, key)
        return self._process(inbound, key, session, has_held)

    def _wait_for_reply(self, inbound: Inbound, key: str) -> str | None:
        """A retry while the first attempt runs: wait briefly for its reply, else 'success'."""
        deadline = self.clock() + RETRY_WAIT_SECONDS
        while self.clock() < deadline:
            self.sleep(0.1)
            claim, session, has_held = self.store.begin_turn(key, inbound.user, self.clock(), CLAIM_LEASE_SECONDS)
            if claim.status == "done":
                return claim.reply or None
            if claim.status == "new":  # the first attempt died: we own it now
                log.warning("dedupe: took over %s from a lost attempt", key)
                return self._process(inbound, key, session, has_held)
        return None

    def _process(self, inbound: Inbound, key: str, session: Session, has_held: bool) -> str | None:
        """Run the dialogue step, perform its actions, then write the turn in one transaction."""
        now = self.clock()
        new_session, actions = dialogue.step(session, inbound, self.kb, now)
        context = {"inbound": inbound, "key": key, "now": now, "ended": False,
                   "hits": [], "unanswered": [], "clarified": []}
        parts: list[tuple[str, str | None]] = []
        for action in actions:
            parts.extend(self.performers[type(action)](action, context))
        held = [row.payload["text"] for row in self.store.take_held(inbound.user, now)] if has_held else []
        reply = self._compose(held, parts)
        lines = (("in", inbound.text),) if inbound.text else ()
        self.store.finish_turn(TurnRecord(
            user=inbound.user, now=now, key=key, reply=reply or "",
            session=None if context["ended"] else new_session, end_session=context["ended"],
            lines=lines + ((("out", reply),) if reply else ()),
            hits=tuple(context["hits"]), unanswered=tuple(context["unanswered"]),
            clarified=tuple(context["clarified"])))
        return reply

    def _compose(self, held: list[str], parts: list[tuple[str, str | None]]) -> str | None:
        """Join held follow-ups and replies within the passive-reply byte limit."""
        texts = held + [text for text, _ in parts]
        reply = "\n\n".join(t for t in texts if t)
        if len(reply.encode("utf-8")) > REPLY_LIMIT_BYTES:
            shortened = [self._short(text, answer_id) for text, answer_id in parts]
            reply = "\n\n".join(t for t in held + shortened if t)
        return fit_bytes(reply, REPLY_LIMIT_BYTES, "\n…") if reply else None

    def _short(self, text: str, answer_id: str | None) -> str:
        """The steps-plus-link version of an FAQ reply (its full text when it has none)."""
        short = self.kb.short_answer(answer_id, self.public_url) if answer_id else None
        return short or text

    # -- action performers: each returns [(reply text, answer id)] ----------------------------

    def _reply(self, action: Reply, ctx: dict) -> list:
        """A text for the customer."""
        return [(action.text, action.answer_id)]

    def _create_ticket(self, action: CreateTicket, ctx: dict) -> list:
        """Open the ticket (idempotent on the message) with its ops notification."""
        inbound: Inbound = ctx["inbound"]
        draft = Ticket(id=0, user=inbound.user, kind=action.kind, intent=action.intent, status="open",
                       tax_id=action.tax_id, flags=action.flags, words=action.words,
                       channel=inbound.channel, created_at=ctx["now"])
        source = ctx["key"] or f"{inbound.channel}:{inbound.user}:{ctx['now']}"
        transcript = self.store.recent_messages(inbound.user, 10) if action.kind == "human" else []
        ticket, created = self.store.create_ticket(
            draft, source, lambda saved: self._notify_rows(saved, transcript))
        log.info("ticket %s %s for %s (tax id %s)", ticket.number, "created" if created else "reused",
                 inbound.user, mask_tax_id(ticket.tax_id))
        text = self.kb.render("ticket-created", ticket=ticket.number, tax_id=ticket.tax_id,
                              kind=ticket.kind, flagged=bool(ticket.flags))
        return [(text, None)]

    def _notify_rows(self, ticket: Ticket, transcript: list[dict]) -> list[dict]:
        """The ops message for a newly inserted ticket (none when ops are not configured)."""
        if not self.ops_enabled:
            return []
        return [ops_notification(self.kb, ticket, self.public_url, transcript)]

    def _remember(self, action: RememberTaxId, ctx: dict) -> list:
        """Remember the tax ID for later flows."""
        self.store.remember_tax_id(ctx["inbound"].user, action.tax_id)
        return []

    def _forget(self, action: ForgetTaxId, ctx: dict) -> list:
        """Forget the remembered tax ID."""
        self.store.forget_tax_id(ctx["inbound"].user)
        return []

    def _unanswered(self, action: LogUnanswered, ctx: dict) -> list:
        """Log a question nothing answered."""
        log.info("unanswered question from %s", ctx["inbound"].user)
        ctx["unanswered"].append(_masked(action.text))
        return []

    def _clarified(self, action: LogClarified, ctx: dict) -> list:
        """Log a question that needed a "did you mean" choice."""
        ctx["clarified"].append(_masked(action.text))
        return []

    def _hit(self, action: LogHit, ctx: dict) -> list:
        """Count an answered intent."""
        ctx["hits"].append(action.intent)
        return []

    def _attach(self, action: AttachImage, ctx: dict) -> list:
        """Attach a screenshot to the customer's ticket, or ask what it is about."""
        ticket = self.desk.attach_image(ctx["inbound"].user, action.media_id, action.pic_url, ctx["now"])
        if ticket is None:
            return [(self.kb.render("image-no-ticket"), None)]
        return [(self.kb.render("image-attached", ticket=ticket.number), None)]

    def _show_tickets(self, action: ShowTickets, ctx: dict) -> list:
        """The state of the customer's tickets."""
        tickets = self.store.list_tickets(user=ctx["inbound"].user)[:5]
        rows = [{"number": t.number, "status": t.status, "title": self._ticket_title(t)} for t in tickets]
        return [(self.kb.render("ticket-status", tickets=rows), None)]

    def _ticket_title(self, ticket: Ticket) -> str:
        """A short title for a ticket: its intent's title."""
        intent = self.kb.intents.get(ticket.intent)
        return intent.title if intent else ticket.intent

    def _end(self, action: EndSession, ctx: dict) -> list:
        """Forget the conversation (unsubscribe)."""
        ctx["ended"] = True
        return []


def _masked(text: str) -> str:
    """The question with any tax ID in it masked (analytics never keep a full tax ID)."""
    found = find_tax_id(text)
    return text.replace(found.value, mask_tax_id(found.value)) if found.value else text
