"""The Store contract's desk on every backend: tickets, their history, and the outbox."""
from __future__ import annotations

import pytest

from tests.store_cases import OPS, T0, all_backends, make_ticket, pending, queue


# ---- tickets -------------------------------------------------------------------------------

@all_backends()
def test_create_ticket_is_idempotent_on_source_key(store):
    """A retried message returns the first ticket and queues nothing more."""
    ticket, created = store.tickets.create(make_ticket(flags=("校验位未通过",)), "msg-1",
                                          lambda t: [{**OPS, "payload": {"markdown": t.number}}])
    again, created_again = store.tickets.create(make_ticket(words="again"), "msg-1", [OPS])
    assert (created, created_again) == (True, False)
    assert again == ticket == store.tickets.get(ticket.id)
    assert ticket.flags == ("校验位未通过",) and ticket.tax_id == "91110000600037341L"
    assert [row.payload for row in pending(store)] == [{"markdown": ticket.number}]
    assert [e["kind"] for e in store.tickets.events(ticket.id)] == ["created"]


@all_backends()
def test_bad_outbox_row_creates_nothing(store):
    """An invalid outbox row is a clear error and the ticket is rolled back with it."""
    with pytest.raises(ValueError, match="outbox row"):
        store.tickets.create(make_ticket(), "msg-bad", [OPS, {"target": "fax", "payload": {}}])
    assert store.tickets.list() == [] and pending(store) == []


@all_backends()
@pytest.mark.parametrize("status, user, expected", [
    (None, None, ["k3", "k2", "k1"]),
    ("open", None, ["k3", "k1"]),
    (None, "u2", ["k2"]),
    ("resolved", "u1", []),
])
def test_list_tickets_filters_newest_first(store, status, user, expected):
    """Filters by status and user; newest first."""
    numbers = {}
    for i, (key, who) in enumerate([("k1", "u1"), ("k2", "u2"), ("k3", "u1")]):
        numbers[store.tickets.create(make_ticket(user=who, now=T0 + i), key, [])[0].id] = key
    store.tickets.resolve(next(n for n, k in numbers.items() if k == "k2"), T0 + 5, [])
    assert [numbers[t.id] for t in store.tickets.list(status=status, user=user)] == expected


@all_backends()
def test_resolve_ticket_queues_customer_message_once(store):
    """Resolving twice sends the customer one message; unknown tickets give None."""
    ticket, _ = store.tickets.create(make_ticket(), "msg-1", [])
    done = {"target": "customer", "user": "u1", "payload": {"text": "已处理"}}
    first = store.tickets.resolve(ticket.id, T0 + 60, [done])
    second = store.tickets.resolve(ticket.id, T0 + 90, [done])
    assert (first.status, first.resolved_at) == ("resolved", T0 + 60) and second == first
    assert [(r.target, r.user, r.payload) for r in pending(store)] == [("customer", "u1", {"text": "已处理"})]
    assert store.tickets.resolve(999, T0, [done]) is None
    assert [e["kind"] for e in store.tickets.events(ticket.id)] == ["created", "resolved"]


@all_backends()
def test_attach_reopens_resolved_ticket(store):
    """A screenshot on a resolved ticket reopens it and is forwarded to ops."""
    ticket, _ = store.tickets.create(make_ticket(), "msg-1", [])
    store.tickets.resolve(ticket.id, T0 + 60, [])
    forward = {"target": "ops", "payload": {"markdown": "截图"}}
    attached = store.tickets.attach(ticket.id, "media-1", T0 + 120, [forward])
    assert (attached.status, attached.resolved_at, attached.attachments) == ("open", None, ("media-1",))
    again = store.tickets.attach(ticket.id, "media-2", T0 + 130, [])
    assert again.attachments == ("media-1", "media-2") and store.tickets.get(ticket.id) == again
    assert [r.payload for r in pending(store)] == [{"markdown": "截图"}]
    history = [(e["kind"], e["detail"]) for e in store.tickets.events(ticket.id)]
    assert history[1:] == [("resolved", ""), ("attached", "media-1"), ("reopened", ""),
                           ("attached", "media-2")]
    with pytest.raises(KeyError):
        store.tickets.attach(404, "media-3", T0, [])


# ---- outbox --------------------------------------------------------------------------------

@all_backends()
@pytest.mark.parametrize("target, limit, expected", [
    (None, 10, ["c0", "o0", "c1", "o1"]),
    ("ops", 10, ["o0", "o1"]),
    ("customer", 1, ["c0"]),
])
def test_claim_outbox_takes_due_rows_in_order(store, target, limit, expected):
    """Due pending rows, oldest first, filtered by target; future rows wait."""
    names = {}
    for i in range(2):
        names[queue(store, "customer", 1, T0 + 2 * i)[0]] = f"c{i}"
        names[queue(store, "ops", 1, T0 + 2 * i + 1)[0]] = f"o{i}"
    queue(store, "ops", 1, T0 + 100)
    rows = store.outbox.claim(T0 + 10, limit=limit, target=target)
    assert [names[r.id] for r in rows] == expected
    assert {r.status for r in rows} == {"sending"}
    again = store.outbox.claim(T0 + 10, limit=limit, target=target)
    assert not {r.id for r in again} & {r.id for r in rows}


@all_backends()
def test_outbox_retry_sent_and_stale_requeue(store):
    """A failed send comes back later with attempts + 1; a dead worker's rows are requeued."""
    row_id, other = queue(store, "ops", 2)
    store.outbox.claim(T0, target="ops")
    store.outbox.retry(row_id, T0 + 30, "robot 502")
    store.outbox.sent(other, T0 + 1)
    assert store.outbox.claim(T0 + 29) == []
    [retried] = store.outbox.claim(T0 + 30)
    assert (retried.id, retried.attempts) == (row_id, 1)
    assert store.outbox.requeue_stale(T0 + 30) == 0
    assert store.outbox.requeue_stale(T0 + 31) == 1
    assert [r.id for r in store.outbox.claim(T0 + 40)] == [row_id]


@all_backends()
def test_held_messages_go_with_the_next_reply_once(store):
    """Held customer messages are taken once, by their user only."""
    mine = queue(store, "customer", 2, user="u1")
    theirs = queue(store, "customer", 1, user="u2")
    store.outbox.claim(T0)
    for row_id in mine + theirs:
        store.outbox.hold(row_id, "45015 window closed")
    assert store.outbox.claim(T0 + 1) == []
    taken = store.outbox.take_held("u1", T0 + 5)
    assert [(r.id, r.status, r.payload) for r in taken] == [(i, "sent", {"text": "t"}) for i in mine]
    assert store.outbox.take_held("u1", T0 + 6) == []
    assert [r.id for r in store.outbox.take_held("u2", T0 + 6)] == theirs


@all_backends()
@pytest.mark.parametrize("sent_at, in_flight, expected", [
    (None, 0, 20),  # nothing sent yet: a full minute's budget
    (T0, 0, 0),  # 20 sent just now
    (T0 - 61, 0, 20),  # sent over a minute ago
    (None, 15, 5),  # 15 claimed by another worker, not yet sent
])
def test_claim_outbox_honours_robot_rate(store, sent_at, in_flight, expected):
    """The WeCom robot gets at most ops_per_minute messages in any 60 s; customers are not limited."""
    ids = queue(store, "ops", 20, T0 - 120)
    if sent_at is not None:
        store.outbox.claim(T0 - 120, limit=20, target="ops")
        for row_id in ids:
            store.outbox.sent(row_id, sent_at)
    queue(store, "ops", 30, T0 - 100)
    store.outbox.claim(T0, limit=in_flight, target="ops")
    queue(store, "customer", 30, T0 - 100)
    rows = store.outbox.claim(T0 + 1, limit=100, ops_per_minute=20)
    assert sum(r.target == "ops" for r in rows) == expected
    assert sum(r.target == "customer" for r in rows) == 30


@all_backends(["memory"])
def test_claim_outbox_rejects_unknown_target(store):
    """A typo in the target is a clear error, not an empty result."""
    with pytest.raises(ValueError, match="fax"):
        store.outbox.claim(T0, target="fax")
