"""Ticket conversations on SQL: who wrote what on a ticket, one open ticket per need, coalesced ops
updates and stored image attachments. New tables only (create_all adds them to old databases).

Images are kept as BLOBs in `attachment_files`: that works on SQLite and on a PostgreSQL shared by
several hosts alike, where a file next to the database would not be shared.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from sqlalchemy import (Column, ForeignKey, Integer, LargeBinary, String, Table, Text, func, insert,
                        select, update)

from bot.model import Ticket
from bot.store.base import OutboxRows
from bot.store.schema import _t, attachments, metadata, outbox_table, tickets
from bot.store.sql_desk import _event, create_ticket, queue_rows, select_tickets

if TYPE_CHECKING:
    from bot.store.sql import Db

log = logging.getLogger(__name__)

NEED_LOCK = 0x6E656564  # pg advisory lock class for "one open ticket per need" ("need")
COALESCE_LOCK = NEED_LOCK + 1  # pg advisory lock class for one coalescing ops row per ticket

ticket_messages = Table(
    "ticket_messages", metadata, Column("id", Integer, primary_key=True),
    Column("ticket_id", ForeignKey("tickets.id"), nullable=False, index=True), _t("at"),
    Column("who", String, nullable=False),  # customer | ops | bot | note
    Column("author", String),  # openid, "console:<user>", "cli", "wecom:<userid>", "bot"
    Column("text", Text, nullable=False), Column("outbox_id", ForeignKey("outbox.id")),
    Column("source_key", String, unique=True))  # the inbound message that wrote it (idempotence)
attachment_files = Table(
    "attachment_files", metadata,
    Column("attachment_id", ForeignKey("attachments.id"), primary_key=True),
    Column("media_id", String), Column("pic_url", Text), Column("channel", String),
    Column("content_type", String), Column("data", LargeBinary), Column("size", Integer),
    _t("fetched_at"), Column("error", Text))


@dataclass(frozen=True)
class TicketMessage:
    """One line of a ticket's conversation; `delivery` is its outbox row's status ("" if none)."""

    id: int
    ticket_id: int
    at: float
    who: str
    author: str
    text: str
    delivery: str = ""


@dataclass(frozen=True)
class Attachment:
    """An image on a ticket: `media` is what was received (PicUrl or MediaId); `stored` = bytes kept."""

    id: int
    ticket_id: int
    media: str
    at: float
    stored: bool = False
    content_type: str = ""
    size: int = 0


@dataclass(frozen=True)
class AttachmentFile:
    """What is needed to show an attachment: the bytes when kept, else where to fetch them."""

    attachment_id: int
    media_id: str
    pic_url: str
    channel: str
    content_type: str = ""
    data: bytes | None = None


def _need_key(user: str, intent: str, tax_id: str) -> int:
    """A 31-bit key for (user, intent, tax ID): the advisory lock of that need."""
    digest = hashlib.sha1(f"{user}\x00{intent}\x00{tax_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class SqlConversations:
    """Conversations on tickets (the Conversations part) on one SQL database."""

    def __init__(self, db: Db):
        """Conversations of `db` (a bound Db: inside its open transaction)."""
        self.db = db

    def _tx(self, write: bool = False):
        """A transaction of the database (the open one when bound)."""
        return self.db.tx(write=write)

    def _lock2(self, conn, kind: int, key: int) -> None:
        """PostgreSQL: a transaction-scoped advisory lock (kind, key); SQLite's writer lock suffices."""
        if self.db.dialect == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(kind, key)))

    @staticmethod
    def _tickets(conn, *where, order=True) -> list[Ticket]:
        """Tickets matching `where`, newest first."""
        return select_tickets(conn, *where, order=order)

    @staticmethod
    def _queue(conn, rows, ticket_id, user, now) -> list[int]:
        """Queue outbox rows on the open transaction."""
        return queue_rows(conn, rows, ticket_id, user, now)

    @staticmethod
    def _event(conn, ticket_id: int, at: float, kind: str, detail: str = "", actor: str = "") -> None:
        """Append a ticket event."""
        _event(conn, ticket_id, at, kind, detail, actor)

    def open_or_join(self, ticket: Ticket, source_key: str, outbox: OutboxRows) -> tuple[Ticket, str]:
        """A new ticket with its outbox rows ("created"), the ticket this very message opened before
        ("retry"), or the user's open ticket for the same need — intent and tax ID ("joined")."""
        with self._tx(write=True) as conn:
            self._lock2(conn, NEED_LOCK, _need_key(ticket.user, ticket.intent, ticket.tax_id))
            own = self._tickets(conn, tickets.c.source_key == source_key)
            if own:
                return own[0], "retry"
            same = self._tickets(conn, tickets.c.user == ticket.user, tickets.c.intent == ticket.intent,
                                 tickets.c.tax_id == ticket.tax_id, tickets.c.status != "resolved")
            if same:
                return same[0], "joined"
            created, _ = create_ticket(self.db, conn, ticket, source_key, outbox)
        return created, "created"

    def resolve_with_message(self, ticket_id: int, now: float, author: str, text: str,
                             outbox: list[dict]) -> Ticket | None:
        """Resolve an open ticket and record + queue the message that tells the customer, in one
        transaction; None when it was resolved already (nothing is queued twice)."""
        with self._tx(write=True) as conn:
            changed = conn.execute(update(tickets).where(tickets.c.id == ticket_id, tickets.c.status != "resolved")
                                   .values(status="resolved", resolved_at=now)).rowcount
            if not changed:
                return None
            self._event(conn, ticket_id, now, "resolved", "", author)
            self._message(conn, ticket_id, "bot", author, text, now, outbox, None)
            return self._tickets(conn, tickets.c.id == ticket_id, order=False)[0]

    def add_ticket_message(self, ticket_id: int, who: str, author: str, text: str, now: float,
                           outbox: list[dict] = (), source_key: str | None = None) -> TicketMessage | None:
        """Record a line on a ticket and queue its outbox rows in one transaction; the line is linked
        to the first customer row (its delivery). None when source_key was already recorded."""
        with self._tx(write=True) as conn:
            if source_key and conn.execute(select(ticket_messages.c.id).where(
                    ticket_messages.c.source_key == source_key)).first():
                return None
            return self._message(conn, ticket_id, who, author, text, now, list(outbox), source_key)

    def _message(self, conn, ticket_id: int, who: str, author: str, text: str, now: float,
                 outbox: list[dict], source_key: str | None) -> TicketMessage:
        """Insert a ticket message and its outbox rows on an open write transaction."""
        user = conn.execute(select(tickets.c.user).where(tickets.c.id == ticket_id)).scalar_one()
        ids = self._queue(conn, outbox, ticket_id, user, now)
        linked = next((i for i, row in zip(ids, outbox) if row["target"] == "customer"), None)
        new_id = conn.execute(insert(ticket_messages).values(
            ticket_id=ticket_id, at=now, who=who, author=author, text=text, outbox_id=linked,
            source_key=source_key).returning(ticket_messages.c.id)).scalar_one()
        if who in ("ops", "note"):  # the ticket's history says who answered or noted what
            self._event(conn, ticket_id, now, "replied" if who == "ops" else "note", text, author)
        status = next((row.get("status", "pending") for row in outbox if row["target"] == "customer"), "")
        return TicketMessage(new_id, ticket_id, now, who, author, text, status)

    def ticket_messages(self, ticket_id: int) -> list[TicketMessage]:
        """A ticket's conversation, oldest first, with each line's delivery status."""
        cols = ticket_messages.c
        query = (select(cols.id, cols.ticket_id, cols.at, cols.who, cols.author, cols.text,
                        outbox_table.c.status).select_from(ticket_messages.outerjoin(
                            outbox_table, outbox_table.c.id == cols.outbox_id))
                 .where(cols.ticket_id == ticket_id).order_by(cols.at, cols.id))
        with self._tx() as conn:
            rows = conn.execute(query).all()
        return [TicketMessage(r[0], r[1], r[2], r[3], r[4] or "", r[5], r[6] or "") for r in rows]

    def last_ops_message_at(self, ticket_id: int) -> float:
        """When ops last wrote to the customer on this ticket (0.0: never)."""
        cols = ticket_messages.c
        with self._tx() as conn:
            return conn.execute(select(func.max(cols.at)).where(
                cols.ticket_id == ticket_id, cols.who == "ops")).scalar() or 0.0

    def coalesce_ops(self, ticket_id: int, line: dict, build: Callable[[list[dict]], dict],
                     now: float, delay: float) -> int:
        """Add `line` to the ticket's pending ops update (one per ticket until it is claimed), or
        queue a new one due in `delay` s; `build(lines)` gives the payload. Returns the row id."""
        cols = outbox_table.c
        with self._tx(write=True) as conn:
            self._lock2(conn, COALESCE_LOCK, ticket_id)
            pending = conn.execute(select(cols.id, cols.payload).where(
                cols.ticket_id == ticket_id, cols.target == "ops", cols.status == "pending")
                .order_by(cols.id.desc())).all()
            row = next((r for r in pending if (r.payload or {}).get("coalesce") == "update"), None)
            if row is not None:
                payload = build([*row.payload.get("lines", []), line])
                conn.execute(update(outbox_table).where(cols.id == row.id).values(payload=payload))
                return row.id
            payload = build([line])
            return self._queue(conn, [{"target": "ops", "payload": payload, "next_at": now + delay}],
                               ticket_id, "", now)[0]

    # -- attachments --
    def attach_media(self, ticket_id: int, media_id: str, pic_url: str, channel: str,
                     now: float) -> tuple[Ticket, int, bool]:
        """Attach an image (reopening a resolved ticket); (ticket, attachment id, reopened)."""
        with self._tx(write=True) as conn:
            found = self._tickets(conn, tickets.c.id == ticket_id, order=False)
            if not found:
                raise KeyError(f"no ticket {ticket_id}")
            media = pic_url or media_id
            new_id = conn.execute(insert(attachments).values(ticket_id=ticket_id, media=media, at=now)
                                  .returning(attachments.c.id)).scalar_one()
            conn.execute(insert(attachment_files).values(attachment_id=new_id, media_id=media_id,
                                                         pic_url=pic_url, channel=channel))
            self._event(conn, ticket_id, now, "attached", media)
            reopened = found[0].status == "resolved"
            if reopened:
                conn.execute(update(tickets).where(tickets.c.id == ticket_id)
                             .values(status="open", resolved_at=None))
                self._event(conn, ticket_id, now, "reopened")
            return self._tickets(conn, tickets.c.id == ticket_id, order=False)[0], new_id, reopened

    def ticket_attachments(self, ticket_id: int) -> list[Attachment]:
        """A ticket's images, oldest first, with whether their bytes are kept."""
        a, f = attachments.c, attachment_files.c
        query = (select(a.id, a.ticket_id, a.media, a.at, f.content_type, f.size, f.data.is_not(None))
                 .select_from(attachments.outerjoin(attachment_files, f.attachment_id == a.id))
                 .where(a.ticket_id == ticket_id).order_by(a.id))
        with self._tx() as conn:
            rows = conn.execute(query).all()
        return [Attachment(r[0], r[1], r[2], r[3], bool(r[6]), r[4] or "", r[5] or 0) for r in rows]

    def attachment_file(self, attachment_id: int) -> AttachmentFile | None:
        """An attachment's bytes (when kept) and where it came from; None when unknown."""
        f = attachment_files.c
        with self._tx() as conn:
            row = conn.execute(select(attachment_files).where(f.attachment_id == attachment_id)).first()
        if row is None:
            return None
        return AttachmentFile(row.attachment_id, row.media_id or "", row.pic_url or "", row.channel or "",
                              row.content_type or "", row.data)

    def store_attachment_file(self, attachment_id: int, content_type: str, data: bytes, now: float) -> None:
        """Keep an attachment's downloaded bytes."""
        with self._tx(write=True) as conn:
            conn.execute(update(attachment_files).where(attachment_files.c.attachment_id == attachment_id)
                         .values(content_type=content_type, data=data, size=len(data), fetched_at=now,
                                 error=None))

    def attachment_fetch_failed(self, attachment_id: int, error: str) -> None:
        """Note why an attachment's bytes could not be fetched (shown in the console)."""
        with self._tx(write=True) as conn:
            conn.execute(update(attachment_files).where(attachment_files.c.attachment_id == attachment_id)
                         .values(error=error[:500]))


