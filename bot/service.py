"""The caller of the dialogue: one message = one store turn (dedupe, state, side effects, reply).

`handle` reads the user's state, runs the pure dialogue step, then performs its actions inside
the message's one write transaction (`Turn.commit`). Each performer returns a typed result;
`_render` is the one place results become reply text, and `_record` what the turn keeps.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable

from bot.conversation import Conversation
from bot.desk import TicketDesk
from bot.kb import REPLY_LIMIT_BYTES, KnowledgeBase
from bot.model import (AttachImage, CreateTicket, EndHuman, EndSession, ForgetTaxId, Forward, Inbound,
                       LogClarified, LogHit, LogUnanswered, RememberTaxId, Reply, Session, ShowTickets,
                       Stage, Ticket)
from bot.store.base import CLAIM_LEASE_SECONDS, Store, Turn, TurnRecord, TurnWriter
from bot.taxid import find_tax_id, mask_tax_id
from bot.tickets import fit_bytes

log = logging.getLogger(__name__)

RETRY_WAIT_SECONDS = 3.5  # a retry waits this long for the first attempt's reply (WeChat allows 5 s)
TRANSCRIPT_LINES = 10  # lines of the conversation a human-handoff ticket carries to ops
STATUS_TICKETS = 5  # tickets a status request lists


@dataclass(frozen=True)
class Context:
    """What a performer may use: the message, its dedupe key, the time, its open transaction."""

    inbound: Inbound
    key: str
    now: float
    tx: TurnWriter
    later: list[Callable[[], object]] = field(default_factory=list)  # jobs run after the reply

    @property
    def source(self) -> str:
        """What makes a ticket write idempotent: the message's dedupe key (or a unique stand-in)."""
        return self.key or f"{self.inbound.channel}:{self.inbound.user}:{self.now}"


# ---- performer results: facts, rendered only by BotService._render --------------------------

@dataclass(frozen=True)
class Said:
    """A dialogue text for the customer; `answer_id` names the FAQ it renders (short version)."""

    text: str
    answer_id: str | None = None


@dataclass(frozen=True)
class TicketOpened:
    """The message's ticket: "created", "retry" (an earlier attempt opened it) or "joined" (the
    customer's open ticket for the same need took the words); `live` = a conversation with a person."""

    ticket: Ticket
    how: str
    live: bool = False


@dataclass(frozen=True)
class ImageFiled:
    """A screenshot attached to `ticket` (None: the customer has no ticket it could belong to)."""

    ticket: Ticket | None


@dataclass(frozen=True)
class TicketsListed:
    """The customer's newest tickets, for a status request."""

    tickets: tuple[Ticket, ...]


@dataclass(frozen=True)
class Noted:
    """Bookkeeping with no text: an answered intent, a question for authors, the tax ID, the end."""

    hit: str = ""
    unanswered: str = ""
    clarified: str = ""  # a question answered with "did you mean 1 or 2"
    tax_id: str | None = None  # remember it; "" forgets it
    end_session: bool = False


Result = Said | TicketOpened | ImageFiled | TicketsListed | Noted


def reply_row(inbound: Inbound, text: str) -> dict:
    """The outbox row that delivers a late reply by customer-service message on the message's channel."""
    return {"target": "customer", "user": inbound.user, "payload": {"text": text, "channel": inbound.channel}}


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
        self.desk = desk or TicketDesk.of(kb, store, public_url, ops_enabled)
        self.conversation = conversation or Conversation()
        self.spawn: Callable[[Callable[[], object]], None] = _in_background  # image downloads
        self.performers: dict[type, Callable[[object, Context], Result]] = {
            Reply: self._reply, CreateTicket: self._create_ticket, Forward: self._forward,
            EndHuman: self._end_human, RememberTaxId: self._remember, ForgetTaxId: self._forget,
            LogUnanswered: self._unanswered, LogHit: self._hit, LogClarified: self._clarified,
            AttachImage: self._attach, ShowTickets: self._show_tickets, EndSession: self._end,
        }

    def handle(self, inbound: Inbound, push_reply: bool = False) -> str | None:
        """Reply to a message exactly once: a retry of the same message gets the same reply.

        `push_reply`: the message comes late (from the spool), so its reply is queued in the
        same transaction as a customer-service message instead of being returned for a passive reply.
        """
        key = f"{inbound.channel}:{inbound.msg_id}" if inbound.msg_id else ""
        with self.store.turns.turn(key, inbound.user, self.clock(), CLAIM_LEASE_SECONDS, inbound.stamp) as turn:
            if turn.status == "new":
                return self._process(inbound, key, turn, push_reply)
            if turn.status == "done":
                log.info("dedupe: retry of %s answered from store", key)
                return turn.reply or None
        return self._wait_for_reply(inbound, key)

    def _wait_for_reply(self, inbound: Inbound, key: str) -> str | None:
        """A retry while the first attempt runs elsewhere: wait briefly for its reply, else 'success'."""
        deadline = self.clock() + RETRY_WAIT_SECONDS
        while self.clock() < deadline:
            self.sleep(0.1)
            with self.store.turns.turn(key, inbound.user, self.clock(), CLAIM_LEASE_SECONDS, inbound.stamp) as turn:
                if turn.status == "done":
                    return turn.reply or None
                if turn.status == "new":  # the first attempt died: we own it now
                    log.warning("dedupe: took over %s from a lost attempt", key)
                    return self._process(inbound, key, turn)
        return None

    def _process(self, inbound: Inbound, key: str, turn: Turn, push_reply: bool = False) -> str | None:
        """Run the dialogue step, then its actions and the turn's record in one transaction."""
        now, later = self.clock(), []
        state = turn.session
        view = self.desk.conversation_view(inbound.user, state.purpose) if state.stage is Stage.HUMAN else None
        session, actions = self.conversation.step(state, inbound, self.kb, now, view)

        def work(tx: TurnWriter) -> TurnRecord:
            """The performers, on the message's transaction."""
            context = Context(inbound, key, now, tx, later)
            results = [self.performers[type(action)](action, context) for action in actions]
            held = [row.payload["text"] for row in tx.outbox.take_held(inbound.user, now)] if turn.held else []
            record = self._record(inbound, session, results, held)
            if push_reply and record.reply:  # pushed: a late WeChat retry must not get it a second time
                tx.outbox.queue(reply_row(inbound, record.reply), None, now)
                return replace(record, reply="")
            return record
        reply = turn.commit(work) or None
        for job in later:
            self.spawn(job)
        return reply

    def _record(self, inbound: Inbound, session: Session, results: list[Result], held: list[str]) -> TurnRecord:
        """What the turn keeps: the composed reply, the new state, transcript and analytics."""
        notes = [r for r in results if isinstance(r, Noted)]
        reply = self._compose(held, [part for part in map(self._render, results) if part])
        ended = any(n.end_session for n in notes)
        tax_ids = [n.tax_id for n in notes if n.tax_id is not None]
        lines = (("in", inbound.text),) if inbound.text else ()
        return TurnRecord(
            reply=reply or "", session=None if ended else session, end_session=ended,
            tax_id=tax_ids[-1] if tax_ids else None, lines=lines + ((("out", reply),) if reply else ()),
            hits=tuple(n.hit for n in notes if n.hit), unanswered=tuple(n.unanswered for n in notes if n.unanswered),
            clarified=tuple(n.clarified for n in notes if n.clarified))

    def _render(self, result: Result) -> tuple[str, str | None] | None:
        """The one place a performer's result becomes reply text: (text, FAQ id for its short version)."""
        if isinstance(result, Said):
            return result.text, result.answer_id
        if isinstance(result, TicketOpened):
            return self._ticket_text(result), None
        if isinstance(result, ImageFiled):
            if result.ticket is None:
                return self.kb.render("image-no-ticket"), None
            return self.kb.render("image-attached", ticket=result.ticket.number), None
        if isinstance(result, TicketsListed):
            rows = [{"number": t.number, "status": t.status, "title": self._ticket_title(t)}
                    for t in result.tickets]
            return self.kb.render("ticket-status", tickets=rows), None
        return None

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

    def _ticket_text(self, opened: TicketOpened) -> str:
        """What the customer is told about their ticket: created (with the FAQ's handoff.customer
        text) or the open one their words were added to."""
        ticket = opened.ticket
        if opened.how == "joined":
            return self.kb.render("ticket-exists", ticket=ticket.number, live=opened.live)
        following = self.kb.part(ticket.intent, "handoff.customer", ticket=ticket.number,
                                 tax_id=ticket.tax_id, flagged=bool(ticket.flags))
        return self.kb.render("ticket-created", ticket=ticket.number, tax_id=ticket.tax_id,
                              flagged=bool(ticket.flags), next=following, live=opened.live)

    def _ticket_title(self, ticket: Ticket) -> str:
        """A short title for a ticket: its intent's title."""
        intent = self.kb.intents.get(ticket.intent)
        return intent.title if intent else ticket.intent

    # -- action performers: each returns a typed result ----------------------------------------

    def _reply(self, action: Reply, ctx: Context) -> Said:
        """A text for the customer."""
        return Said(action.text, action.answer_id)

    def _create_ticket(self, action: CreateTicket, ctx: Context) -> TicketOpened:
        """Open the ticket (idempotent on the message; one open ticket per need)."""
        inbound = ctx.inbound
        intent = self.kb.intents.get(action.intent)
        live = bool(intent and intent.live)
        draft = Ticket(id=0, user=inbound.user, kind=action.intent, intent=action.intent, status="open",
                       tax_id=action.tax_id, flags=action.flags, words=action.words,
                       channel=inbound.channel, created_at=ctx.now)
        transcript = ctx.tx.transcript(TRANSCRIPT_LINES) if live else []
        ticket, how = self.desk.within(ctx.tx).open_ticket(draft, ctx.source, transcript)
        log.info("ticket %s %s for %s (tax id %s)", ticket.number, how, inbound.user, mask_tax_id(ticket.tax_id))
        return TicketOpened(ticket, how, live)

    def _forward(self, action: Forward, ctx: Context) -> Noted:
        """A live conversation's message: onto the ticket and (coalesced) to ops."""
        desk = self.desk.within(ctx.tx)
        if desk.forward(ctx.inbound.user, action.intent, action.text, action.answered, ctx.source, ctx.now) is None:
            log.warning("forward: %s has no open %s ticket", ctx.inbound.user, action.intent)
        return Noted()

    def _end_human(self, action: EndHuman, ctx: Context) -> Noted:
        """The live conversation ended (the customer left, or idle)."""
        self.desk.within(ctx.tx).end_conversation(ctx.inbound.user, action.intent, action.reason, ctx.now)
        return Noted()

    def _remember(self, action: RememberTaxId, ctx: Context) -> Noted:
        """Remember the tax ID for later flows."""
        return Noted(tax_id=action.tax_id)

    def _forget(self, action: ForgetTaxId, ctx: Context) -> Noted:
        """Forget the remembered tax ID."""
        return Noted(tax_id="")

    def _unanswered(self, action: LogUnanswered, ctx: Context) -> Noted:
        """Log a question nothing answered (a tax ID in it masked)."""
        log.info("unanswered question from %s", ctx.inbound.user)
        return Noted(unanswered=_masked(action.text))

    def _clarified(self, action: LogClarified, ctx: Context) -> Noted:
        """Log a question that needed a "did you mean" choice (a tax ID in it masked)."""
        return Noted(clarified=_masked(action.text))

    def _hit(self, action: LogHit, ctx: Context) -> Noted:
        """Count an answered intent."""
        return Noted(hit=action.intent)

    def _attach(self, action: AttachImage, ctx: Context) -> ImageFiled:
        """Attach a screenshot to the ticket the conversation is about (None when there is none);
        the image itself is downloaded (media/get) after the reply."""
        inbound = ctx.inbound
        found = self.desk.within(ctx.tx).attach_image(inbound.user, inbound.channel, action.media_id,
                                                      action.pic_url, action.about, ctx.now)
        if found is None:
            return ImageFiled(None)
        ticket, attachment_id = found
        ctx.later.append(lambda: self.desk.download(attachment_id, inbound.channel, action.media_id))
        return ImageFiled(ticket)

    def _show_tickets(self, action: ShowTickets, ctx: Context) -> TicketsListed:
        """The customer's newest tickets."""
        return TicketsListed(tuple(ctx.tx.tickets.list(user=ctx.inbound.user)[:STATUS_TICKETS]))

    def _end(self, action: EndSession, ctx: Context) -> Noted:
        """Forget the conversation (unsubscribe)."""
        return Noted(end_session=True)


def _masked(text: str) -> str:
    """The question with any tax ID in it masked (analytics never keep a full tax ID)."""
    found = find_tax_id(text)
    return text.replace(found.value, mask_tax_id(found.value)) if found.value else text


def _in_background(job: Callable[[], object]) -> None:
    """Run a job after the reply in a daemon thread (a lost download is retried when ops look)."""
    threading.Thread(target=job, name="after-turn", daemon=True).start()
