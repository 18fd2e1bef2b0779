"""The caller of the dialogue: dedupe, state, side effects and the final reply for one message."""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from bot.conversation import Conversation
from bot.desk import TicketDesk
from bot.kb import REPLY_LIMIT_BYTES, KnowledgeBase
from bot.model import (AttachImage, CreateTicket, EndHuman, EndSession, ForgetTaxId, Forward, Inbound,
                       LogHit, LogUnanswered, RememberTaxId, Reply, Session, ShowTickets, Stage, Ticket)
from bot.store.base import Store, TurnRecord
from bot.taxid import find_tax_id, mask_tax_id
from bot.tickets import fit_bytes

log = logging.getLogger(__name__)

RETRY_WAIT_SECONDS = 3.5  # a retry waits this long for the first attempt's reply (WeChat allows 5 s)
CLAIM_LEASE_SECONDS = 4.0  # a claim older than this without a reply was lost (killed worker)


class BotService:
    """Handles one inbound message end to end and returns the passive reply text (or None)."""

    def __init__(self, kb: KnowledgeBase, store: Store, public_url: str = "",
                 ops_enabled: bool = True, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, *, desk: TicketDesk | None = None,
                 conversation: Conversation | None = None):
        """Wire the knowledge base, store and desk; clock and sleep are injectable for tests."""
        self.kb, self.store, self.public_url = kb, store, public_url
        self.ops_enabled = ops_enabled
        self.clock, self.sleep = clock, sleep
        self.desk = desk or TicketDesk(kb, store, public_url, ops_enabled)
        self.conversation = conversation or Conversation()
        self.spawn: Callable[[Callable[[], object]], None] = _in_background  # image downloads
        self.performers = {
            Reply: self._reply, CreateTicket: self._create_ticket, Forward: self._forward,
            EndHuman: self._end_human, RememberTaxId: self._remember, ForgetTaxId: self._forget,
            LogUnanswered: self._unanswered, LogHit: self._hit, AttachImage: self._attach,
            ShowTickets: self._show_tickets, EndSession: self._end,
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
        view = self.desk.conversation_view(inbound.user, session.purpose) if session.stage is Stage.HUMAN else None
        new_session, actions = self.conversation.step(session, inbound, self.kb, now, view)
        context = {"inbound": inbound, "key": key, "now": now, "ended": False, "hits": [], "unanswered": [],
                   "later": []}
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
            hits=tuple(context["hits"]), unanswered=tuple(context["unanswered"])))
        for job in context["later"]:
            self.spawn(job)
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
        """Open the ticket (idempotent on the message; one open ticket per need) and say which."""
        inbound: Inbound = ctx["inbound"]
        intent = self.kb.intents.get(action.intent)
        live = bool(intent and intent.live)
        draft = Ticket(id=0, user=inbound.user, kind=action.intent, intent=action.intent, status="open",
                       tax_id=action.tax_id, flags=action.flags, words=action.words,
                       channel=inbound.channel, created_at=ctx["now"])
        transcript = self.store.recent_messages(inbound.user, 10) if live else []
        ticket, how = self.desk.open_ticket(draft, self._source(ctx), transcript)
        log.info("ticket %s %s for %s (tax id %s)", ticket.number, how, inbound.user, mask_tax_id(ticket.tax_id))
        if how == "joined":
            return [(self.kb.render("ticket-exists", ticket=ticket.number, live=live), None)]
        following = self.kb.part(action.intent, "handoff.customer", ticket=ticket.number,
                                 tax_id=ticket.tax_id, flagged=bool(ticket.flags))
        text = self.kb.render("ticket-created", ticket=ticket.number, tax_id=ticket.tax_id,
                              flagged=bool(ticket.flags), next=following, live=live)
        return [(text, None)]

    @staticmethod
    def _source(ctx: dict) -> str:
        """What makes a ticket write idempotent: the message's dedupe key (or a unique stand-in)."""
        inbound: Inbound = ctx["inbound"]
        return ctx["key"] or f"{inbound.channel}:{inbound.user}:{ctx['now']}"

    def _forward(self, action: Forward, ctx: dict) -> list:
        """A live conversation's message: onto the ticket and (coalesced) to ops."""
        inbound: Inbound = ctx["inbound"]
        ticket = self.desk.forward(inbound.user, action.intent, action.text, action.answered,
                                   self._source(ctx), ctx["now"])
        if ticket is None:
            log.warning("forward: %s has no open %s ticket", inbound.user, action.intent)
        return []

    def _end_human(self, action: EndHuman, ctx: dict) -> list:
        """The live conversation ended (customer left, or idle)."""
        self.desk.end_conversation(ctx["inbound"].user, action.intent, action.reason, ctx["now"])
        return []

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
        found = find_tax_id(action.text)
        text = action.text.replace(found.value, mask_tax_id(found.value)) if found.value else action.text
        log.info("unanswered question from %s", ctx["inbound"].user)
        ctx["unanswered"].append(text)
        return []

    def _hit(self, action: LogHit, ctx: dict) -> list:
        """Count an answered intent."""
        ctx["hits"].append(action.intent)
        return []

    def _attach(self, action: AttachImage, ctx: dict) -> list:
        """Attach a screenshot to the ticket the conversation is about, or ask what it is about;
        the image itself is downloaded (media/get) after the reply."""
        inbound: Inbound = ctx["inbound"]
        found = self.desk.attach_image(inbound.user, inbound.channel, action.media_id, action.pic_url,
                                       action.about, ctx["now"])
        if found is None:
            return [(self.kb.render("image-no-ticket"), None)]
        ticket, attachment_id = found
        ctx["later"].append(lambda: self.desk.download(attachment_id, inbound.channel, action.media_id))
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



def _in_background(job: Callable[[], object]) -> None:
    """Run a job after the reply in a daemon thread (a lost job is retried when ops look)."""
    threading.Thread(target=job, name="after-turn", daemon=True).start()
