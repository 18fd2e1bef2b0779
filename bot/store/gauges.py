"""What /metrics reads: counts that cost the same at a million rows as at ten.

Open tickets and unsent outbox rows are few and indexed by status, so they are counted; totals
come from the tables' largest id (rows are never deleted from them); answered questions per
intent are a counter bumped in the message's own write transaction (table `counters`).
"""
from __future__ import annotations

from sqlalchemy import Column, Integer, String, Table, func, select

from bot.store.schema import metadata, outbox_table, tickets, unanswered

counters = Table("counters", metadata, Column("name", String, primary_key=True),
                 Column("value", Integer, nullable=False))
UNSENT = ("pending", "sending", "held", "dead")  # outbox statuses that stay few (sent ones pile up)
HIT_PREFIX = "hits:"


class SqlGauges:
    """metric_counts() for SqlReports (mixed in: uses its `db`)."""

    def metric_counts(self) -> dict:
        """{"tickets": {status: n}, "outbox": {"target:status": n}, "hits": {intent: n}, "unanswered": n}."""
        cols, out = tickets.c, outbox_table.c
        below, above = cols.status < "resolved", cols.status > "resolved"  # each an index range
        with self.db.tx() as conn:
            total = conn.execute(select(func.max(cols.id))).scalar() or 0
            states = {status: n for part in (below, above) for status, n in conn.execute(
                select(cols.status, func.count()).where(part).group_by(cols.status)).all()}
            queued = conn.execute(select(out.target, out.status, func.count()).where(out.status.in_(UNSENT))
                                  .group_by(out.target, out.status)).all()
            rows = conn.execute(select(func.max(out.id))).scalar() or 0
            asked = conn.execute(select(func.max(unanswered.c.id))).scalar() or 0
            hits = conn.execute(select(counters.c.name, counters.c.value)
                                .where(counters.c.name.startswith(HIT_PREFIX))).all()
        states["resolved"] = total - sum(states.values())
        outbox = {f"{target}:{status}": n for target, status, n in queued}
        outbox["any:sent"] = rows - sum(outbox.values())  # per target would need a scan
        return {"tickets": states, "outbox": outbox, "unanswered": asked,
                "hits": {name[len(HIT_PREFIX):]: value for name, value in hits}}
