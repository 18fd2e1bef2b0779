"""Tickets and the outbox on SQL: what ops and delivery use (and a message's performers, in its transaction)."""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from sqlalchemy import func, insert, or_, select, update

from bot.model import Ticket
from bot.store.base import OPS_PER_MINUTE, OutboxRow, OutboxRows
from bot.store.prepared import held_where
from bot.store.schema import OPS_LOCK, attachments, outbox_row, outbox_table, ticket_events, tickets

if TYPE_CHECKING:
    from bot.store.sql import Db

log = logging.getLogger(__name__)
TARGETS = ("ops", "customer")


def queue_rows(conn, rows: list[dict], ticket_id: int | None, user: str, now: float) -> list[int]:
    """Insert outbox rows (target, user, payload[, next_at][, status]) as pending (or, for a
    customer row that cannot go out now, held for their next reply); their ids."""
    ids = []
    for row in rows:
        if row.get("target") not in TARGETS or not isinstance(row.get("payload"), dict):
            raise ValueError(f"outbox row needs a target in {TARGETS} and a dict payload: {row!r:.200}")
        status = row.get("status", "pending")
        if status not in ("pending", "held") or (status == "held" and row["target"] != "customer"):
            raise ValueError(f"outbox rows start pending (customer rows may start held): {status!r}")
        ids.append(conn.execute(insert(outbox_table).values(
            target=row["target"], user=row.get("user") or user, payload=row["payload"],
            ticket_id=ticket_id, status=status, attempts=0, next_at=row.get("next_at", now),
            created_at=now).returning(outbox_table.c.id)).scalar_one())
    return ids


def _event(conn, ticket_id: int, at: float, kind: str, detail: str = "", actor: str = "") -> None:
    """Append a ticket_events row; `actor` names who did it ("" = the bot or the customer)."""
    conn.execute(insert(ticket_events).values(ticket_id=ticket_id, at=at, kind=kind, detail=detail,
                                              actor=actor or None))


def select_tickets(conn, *where, order=True) -> list[Ticket]:
    """Tickets matching `where` with their attachments, newest first (`order`) or as found."""
    query = select(tickets).where(*where)
    if order:
        query = query.order_by(tickets.c.created_at.desc(), tickets.c.id.desc())
    rows = conn.execute(query).all()
    media: dict[int, list[str]] = {row.id: [] for row in rows}
    if media:
        found = conn.execute(select(attachments.c.ticket_id, attachments.c.media)
                             .where(attachments.c.ticket_id.in_(media)).order_by(attachments.c.id))
        for ticket_id, item in found:
            media[ticket_id].append(item)
    return [Ticket(id=r.id, user=r.user, kind=r.kind, intent=r.intent, status=r.status,
                   tax_id=r.tax_id or "", flags=tuple(r.flags or ()), words=r.words or "",
                   channel=r.channel, created_at=r.created_at, resolved_at=r.resolved_at,
                   attachments=tuple(media[r.id])) for r in rows]


def create_ticket(db: Db, conn, ticket: Ticket, source_key: str, outbox: OutboxRows) -> tuple[Ticket, bool]:
    """Insert the ticket and its outbox rows on the open write transaction `conn`, idempotent on source_key."""
    values = dict(user=ticket.user, kind=ticket.kind, intent=ticket.intent, status=ticket.status,
                  tax_id=ticket.tax_id, flags=list(ticket.flags), words=ticket.words,
                  channel=ticket.channel, source_key=source_key, created_at=ticket.created_at)
    stmt = db.insert(tickets).values(**values).on_conflict_do_nothing(index_elements=["source_key"])
    new_id = conn.execute(stmt.returning(tickets.c.id)).scalar()
    if new_id is None:
        return select_tickets(conn, tickets.c.source_key == source_key)[0], False
    created = replace(ticket, id=new_id, attachments=())  # as stored: no need to read it back
    rows = outbox(created) if callable(outbox) else outbox
    queue_rows(conn, rows, new_id, ticket.user, ticket.created_at)
    _event(conn, new_id, ticket.created_at, "created", f"{ticket.kind} {ticket.intent}")
    log.info("store: ticket %s created for %s (%d outbox rows)", created.number, ticket.user, len(rows))
    return created, True


class SqlTickets:
    """Tickets, their events and attachments; outbox rows queued in the same transaction."""

    def __init__(self, db: Db):
        """Tickets of `db` (a bound Db: inside its open transaction)."""
        self.db = db

    @staticmethod
    def _tickets(conn, *where, order=True) -> list[Ticket]:
        """Tickets matching `where`, newest first."""
        return select_tickets(conn, *where, order=order)

    def create(self, ticket: Ticket, source_key: str, outbox: OutboxRows) -> tuple[Ticket, bool]:
        """Insert the ticket and its outbox rows in one transaction, idempotent on source_key."""
        with self.db.tx(write=True) as conn:
            return create_ticket(self.db, conn, ticket, source_key, outbox)

    def get(self, ticket_id: int) -> Ticket | None:
        """One ticket or None."""
        with self.db.tx() as conn:
            found = self._tickets(conn, tickets.c.id == ticket_id, order=False)
        return found[0] if found else None

    def list(self, status: str | None = None, user: str | None = None) -> list[Ticket]:
        """Tickets, newest first, optionally filtered."""
        where = [col == value for col, value in ((tickets.c.status, status), (tickets.c.user, user))
                 if value is not None]
        with self.db.tx() as conn:
            return self._tickets(conn, *where)

    def resolve(self, ticket_id: int, now: float, outbox: list[dict], actor: str = "") -> Ticket | None:
        """Mark resolved and queue `outbox` in the same transaction; no-op if already resolved."""
        with self.db.tx(write=True) as conn:
            open_ = tickets.c.status != "resolved"
            changed = conn.execute(update(tickets).where(tickets.c.id == ticket_id, open_)
                                   .values(status="resolved", resolved_at=now)).rowcount
            found = self._tickets(conn, tickets.c.id == ticket_id, order=False)
            if changed:
                queue_rows(conn, outbox, ticket_id, found[0].user, now)
                _event(conn, ticket_id, now, "resolved", "", actor)
        return found[0] if found else None

    def reopen(self, ticket_id: int, now: float, actor: str = "") -> Ticket | None:
        """Open a resolved ticket again (no-op when open); None if unknown."""
        with self.db.tx(write=True) as conn:
            changed = conn.execute(update(tickets).where(tickets.c.id == ticket_id, tickets.c.status == "resolved")
                                   .values(status="open", resolved_at=None)).rowcount
            if changed:
                _event(conn, ticket_id, now, "reopened", "", actor)
            found = self._tickets(conn, tickets.c.id == ticket_id, order=False)
        return found[0] if found else None

    def add_event(self, ticket_id: int, now: float, kind: str, detail: str = "", actor: str = "",
                  outbox: list[dict] = ()) -> Ticket | None:
        """Append an event (a reply, a note …) and queue `outbox` in one transaction; None if unknown."""
        with self.db.tx(write=True) as conn:
            found = self._tickets(conn, tickets.c.id == ticket_id, order=False)
            if not found:
                return None
            _event(conn, ticket_id, now, kind, detail, actor)
            queue_rows(conn, list(outbox), ticket_id, found[0].user, now)
        return found[0]

    def attach(self, ticket_id: int, media: str, now: float, outbox: list[dict]) -> Ticket:
        """Attach a media reference, reopen if resolved, queue `outbox`; one transaction."""
        with self.db.tx(write=True) as conn:
            found = self._tickets(conn, tickets.c.id == ticket_id, order=False)
            if not found:
                raise KeyError(f"no ticket {ticket_id}")
            conn.execute(insert(attachments).values(ticket_id=ticket_id, media=media, at=now))
            _event(conn, ticket_id, now, "attached", media)
            if found[0].status == "resolved":
                conn.execute(update(tickets).where(tickets.c.id == ticket_id)
                             .values(status="open", resolved_at=None))
                _event(conn, ticket_id, now, "reopened")
            queue_rows(conn, outbox, ticket_id, found[0].user, now)
            return self._tickets(conn, tickets.c.id == ticket_id, order=False)[0]

    def events(self, ticket_id: int) -> list[dict]:
        """History of a ticket: {"at", "kind", "detail", "actor"} ("" = the bot or the customer)."""
        cols = ticket_events.c
        query = (select(cols.at, cols.kind, cols.detail, cols.actor).where(cols.ticket_id == ticket_id)
                 .order_by(cols.at, cols.id))
        with self.db.tx() as conn:
            return [{**row, "actor": row["actor"] or ""} for row in conn.execute(query).mappings()]


class SqlOutbox:
    """The outbox table: queued, claimed with row locks, marked by the delivery worker."""

    def __init__(self, db: Db):
        """The outbox of `db` (a bound Db: inside its open transaction)."""
        self.db = db

    def queue(self, row: dict, ticket_id: int | None, now: float) -> int:
        """Queue one outbox row (target, user, payload) outside ticket creation; returns its id."""
        with self.db.tx(write=True) as conn:
            return queue_rows(conn, [row], ticket_id, row.get("user") or "", now)[0]

    def _ops_budget(self, conn, now: float, per_minute: int) -> int:
        """How many ops rows the robot may still take this minute (sent in 60 s or in flight)."""
        self.db.advisory_lock(conn, OPS_LOCK)
        cols = outbox_table.c
        recent = (cols.status == "sent") & (cols.sent_at > now - 60)
        used = conn.execute(select(func.count()).select_from(outbox_table).where(
            cols.target == "ops", or_(cols.status == "sending", recent))).scalar_one()
        return max(0, per_minute - used)

    def claim(self, now: float, limit: int = 10, target: str | None = None, *,
              ops_per_minute: int = OPS_PER_MINUTE) -> list[OutboxRow]:
        """Atomically move due pending rows to `sending`; no row is ever claimed twice."""
        if target is not None and target not in TARGETS:
            raise ValueError(f"unknown outbox target {target!r}")
        with self.db.tx(write=True) as conn:
            rows = []
            for kind in (target,) if target else TARGETS:
                room = min(limit, self._ops_budget(conn, now, ops_per_minute)) if kind == "ops" else limit
                rows += self._due(conn, kind, now, room) if room > 0 else []
            rows = sorted(rows, key=lambda r: (r.next_at, r.id))[:limit]
            if rows:
                conn.execute(update(outbox_table).where(outbox_table.c.id.in_([r.id for r in rows]))
                             .values(status="sending", claimed_at=now))
        return [replace(outbox_row(r), status="sending") for r in rows]

    @staticmethod
    def _due(conn, target: str, now: float, limit: int) -> list:
        """Lock up to `limit` due pending rows for `target`, skipping rows another worker holds."""
        cols = outbox_table.c
        return conn.execute(
            select(outbox_table).where(cols.status == "pending", cols.target == target, cols.next_at <= now)
            .order_by(cols.next_at, cols.id).limit(limit).with_for_update(skip_locked=True)).all()

    def _set_outbox(self, row_id: int, **values) -> None:
        """Update one outbox row."""
        with self.db.tx(write=True) as conn:
            conn.execute(update(outbox_table).where(outbox_table.c.id == row_id).values(**values))

    def sent(self, row_id: int, now: float, note: str | None = None) -> None:
        """Mark a row delivered (`note`: why it counts as such, e.g. maybe delivered twice)."""
        extra = {} if note is None else {"last_error": note}
        self._set_outbox(row_id, status="sent", sent_at=now, **extra)

    def retry(self, row_id: int, next_at: float, error: str) -> None:
        """Back to pending, due at next_at, attempts + 1."""
        self._set_outbox(row_id, status="pending", next_at=next_at, last_error=error,
                         attempts=outbox_table.c.attempts + 1)

    def dead(self, row_id: int, error: str) -> None:
        """Give up on a row (kept for ops to see)."""
        self._set_outbox(row_id, status="dead", last_error=error, attempts=outbox_table.c.attempts + 1)

    def hold(self, row_id: int, error: str) -> None:
        """Customer window closed: keep for delivery with the customer's next passive reply."""
        self._set_outbox(row_id, status="held", last_error=error)

    def take_held(self, user: str, now: float) -> list[OutboxRow]:
        """Atomically take (mark sent) the user's held customer messages."""
        stmt = (update(outbox_table).where(*held_where(user))
                .values(status="sent", sent_at=now).returning(*outbox_table.c))
        with self.db.tx(write=True) as conn:
            rows = conn.execute(stmt).all()
        return sorted((outbox_row(r) for r in rows), key=lambda r: r.id)

    def requeue_stale(self, older_than: float) -> int:
        """Rows stuck in `sending` (a killed worker) go back to pending."""
        stale = (outbox_table.c.status == "sending") & (outbox_table.c.claimed_at < older_than)
        with self.db.tx(write=True) as conn:
            return conn.execute(update(outbox_table).where(stale).values(status="pending")).rowcount
