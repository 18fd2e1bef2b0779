"""The Store's ticket conversations on every backend: one open ticket per need, who wrote what,
coalesced ops updates, resolving once, and kept image bytes."""
from __future__ import annotations

import threading

import pytest

from tests.store_cases import OPS, SHARED, T0, all_backends, make_ticket, open_backend, pending

CUSTOMER = {"target": "customer", "user": "u1", "payload": {"text": "您好", "channel": "wechat"}}


def notify(ticket) -> list[dict]:
    """The ops row of a new ticket, naming it."""
    return [{**OPS, "payload": {"markdown": ticket.number}}]


@all_backends()
def test_one_open_ticket_per_need(store):
    """Same user, intent and tax ID join the open ticket; the opening message again is a retry;
    another tax ID, or the same need after resolving, is a new ticket."""
    first, how = store.conversations.open_or_join(make_ticket(), "m1", notify)
    assert how == "created"
    assert store.conversations.open_or_join(make_ticket(words="again"), "m1", notify) == (first, "retry")
    assert store.conversations.open_or_join(make_ticket(words="又问"), "m2", notify) == (first, "joined")
    other, how_other = store.conversations.open_or_join(make_ticket(tax_id="91110108551385082Q"), "m3", notify)
    assert how_other == "created" and other.id != first.id
    store.tickets.resolve(first.id, T0 + 1, [])
    later, how_later = store.conversations.open_or_join(make_ticket(), "m4", notify)
    assert how_later == "created" and later.id not in (first.id, other.id)
    assert [row.payload["markdown"] for row in pending(store, "ops")] == [first.number, other.number, later.number]


@all_backends(SHARED)
def test_a_flood_from_many_workers_opens_one_ticket(spec):
    """Ten concurrent "转人工" of one customer, each on its own store connection: one ticket."""
    stores = [open_backend(spec) for _ in range(10)]
    results, start = [], threading.Barrier(10)

    def ask(n: int) -> None:
        """One worker handling message n."""
        start.wait(timeout=10)
        results.append(stores[n].conversations.open_or_join(make_ticket(intent="human-agent", tax_id=""), f"m{n}", notify))

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(how for _, how in results) == ["created"] + ["joined"] * 9
    assert len({ticket.id for ticket, _ in results}) == 1 and len(stores[0].tickets.list()) == 1
    for opened in stores:
        opened.close()


@all_backends()
def test_ticket_messages_record_who_and_follow_delivery(store):
    """Lines keep their author; a reply's line shows its outbox row's status; a message seen
    before (source key) is not recorded twice."""
    ticket, _ = store.tickets.create(make_ticket(), "m1", [])
    assert store.conversations.add_ticket_message(ticket.id, "customer", "u1", "在吗", T0, source_key="wechat:7") is not None
    assert store.conversations.add_ticket_message(ticket.id, "customer", "u1", "在吗", T0, source_key="wechat:7") is None
    reply = store.conversations.add_ticket_message(ticket.id, "ops", "wecom:zhangsan", "您好", T0 + 5, [CUSTOMER])
    assert reply.delivery == "pending" and store.conversations.last_ops_message_at(ticket.id) == T0 + 5
    (row,) = pending(store, "customer")
    store.outbox.hold(row.id, "45015")
    lines = [(m.who, m.author, m.text, m.delivery) for m in store.conversations.ticket_messages(ticket.id)]
    assert lines == [("customer", "u1", "在吗", ""), ("ops", "wecom:zhangsan", "您好", "held")]


@all_backends()
def test_a_customer_row_may_start_held(store):
    """A message that cannot be pushed now waits for the customer's next reply."""
    ticket, _ = store.tickets.create(make_ticket(), "m1", [])
    store.conversations.add_ticket_message(ticket.id, "ops", "cli", "好了", T0, [{**CUSTOMER, "status": "held"}])
    assert pending(store, "customer") == []
    assert [row.payload["text"] for row in store.outbox.take_held("u1", T0 + 1)] == ["您好"]
    with pytest.raises(ValueError, match="start pending"):
        store.outbox.queue({**OPS, "status": "held"}, ticket.id, T0)


@all_backends()
def test_ops_updates_of_a_ticket_coalesce_until_claimed(store):
    """Lines join the ticket's pending update (due after the delay); once it is claimed, the next
    line starts a new one; another ticket has its own."""
    one, _ = store.tickets.create(make_ticket(), "m1", [])
    two, _ = store.tickets.create(make_ticket(user="u2"), "m2", [])

    def build(lines):
        """A payload listing the lines."""
        return {"markdown": " | ".join(line["text"] for line in lines), "lines": lines, "coalesce": "update"}

    first = [store.conversations.coalesce_ops(one.id, {"text": f"第{n}句"}, build, T0 + n, 30.0) for n in range(3)]
    store.conversations.coalesce_ops(two.id, {"text": "别人"}, build, T0, 30.0)
    assert len(set(first)) == 1
    assert store.outbox.claim(T0 + 29, limit=10, target="ops") == []  # not due before the delay
    due = store.outbox.claim(T0 + 31, limit=10, target="ops")
    assert sorted(row.payload["markdown"] for row in due) == ["别人", "第0句 | 第1句 | 第2句"]
    later = store.conversations.coalesce_ops(one.id, {"text": "又一句"}, build, T0 + 40, 30.0)
    assert later not in first and [r.payload["markdown"] for r in pending(store, "ops")] == ["又一句"]


@all_backends()
def test_resolve_with_message_happens_once(store):
    """Two ops resolving at once: one resolution, one message to the customer."""
    ticket, _ = store.tickets.create(make_ticket(), "m1", [])
    done = store.conversations.resolve_with_message(ticket.id, T0 + 1, "console:alice", "已处理", [CUSTOMER])
    assert done.status == "resolved"
    assert store.conversations.resolve_with_message(ticket.id, T0 + 2, "cli:bob", "已处理", [CUSTOMER]) is None
    assert len(pending(store, "customer")) == 1
    assert [(m.who, m.author) for m in store.conversations.ticket_messages(ticket.id)] == [("bot", "console:alice")]


@all_backends()
def test_attachments_keep_their_bytes(store):
    """An image reopens a resolved ticket; its bytes are kept once downloaded, its failure noted."""
    ticket, _ = store.tickets.create(make_ticket(), "m1", [])
    store.tickets.resolve(ticket.id, T0 + 1, [])
    reopened, attachment_id, was_resolved = store.conversations.attach_media(ticket.id, "MEDIA1", "http://p.invalid/1",
                                                               "wechat", T0 + 2)
    assert was_resolved and reopened.status == "open" and reopened.attachments == ("http://p.invalid/1",)
    (listed,) = store.conversations.ticket_attachments(ticket.id)
    assert (listed.id, listed.stored) == (attachment_id, False)
    store.conversations.attachment_fetch_failed(attachment_id, "40007 invalid media_id")
    assert store.conversations.attachment_file(attachment_id).data is None
    store.conversations.store_attachment_file(attachment_id, "image/png", b"\x89PNG-bytes", T0 + 3)
    kept = store.conversations.attachment_file(attachment_id)
    assert (kept.media_id, kept.channel, kept.content_type, kept.data) == ("MEDIA1", "wechat", "image/png",
                                                                          b"\x89PNG-bytes")
    assert store.conversations.ticket_attachments(ticket.id)[0].stored and store.conversations.attachment_file(999) is None
