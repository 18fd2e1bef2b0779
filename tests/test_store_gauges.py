"""metric_counts (bot.store.gauges) on every backend: the same figures a full count would give."""
from __future__ import annotations

from tests.store_cases import OPS, T0, all_backends, make_ticket, pending, queue, take_turn


@all_backends()
def test_metric_counts_match_what_was_stored(store):
    """Two tickets (one resolved), ops rows pending and sent, hits per intent, unanswered questions."""
    first, _ = store.tickets.create(make_ticket("u1"), "m1", [OPS])
    store.tickets.create(make_ticket("u2"), "m2", [OPS])
    store.tickets.resolve(first.id, T0 + 1, [])
    queue(store, "customer", 2)
    (row, *_rest) = store.outbox.claim(T0 + 5, 1, "ops", ops_per_minute=100)
    store.outbox.sent(row.id, T0 + 6)
    take_turn(store, "wechat:1", hits=("greeting", "greeting", "thanks"), unanswered=("红字发票怎么开",))
    take_turn(store, "wechat:2", hits=("thanks",))
    counts = store.reports.metric_counts()
    assert counts["tickets"] == {"open": 1, "resolved": 1}
    assert counts["outbox"] == {"ops:pending": 1, "customer:pending": 2, "any:sent": 1}
    assert counts["hits"] == {"greeting": 2, "thanks": 2}
    assert counts["unanswered"] == 1
    assert len(pending(store)) == 3
