"""The console's store protocols on every backend: operators, console sessions, the login throttle,
who-did-what on tickets, ticket search, insight rows, and the schema step for older databases."""
from __future__ import annotations

import sqlite3

import pytest

from bot.store.sql import Db, sql_store
from bot.store.console import TicketQuery
from tests.store_cases import T0, all_backends, make_ticket, pending, take_turn

HOUR = 3600.0


# ---- operators -------------------------------------------------------------------------------

@all_backends()
def test_operators_are_added_changed_listed_and_removed(store):
    """A second put changes the password; removing ends the account's sessions too."""
    accounts, sessions = store.console.operators, store.console.sessions
    accounts.put("王", "scrypt:1$a$b", T0)
    accounts.put("li", "scrypt:1$c$d", T0)
    accounts.put("王", "scrypt:1$e$f", T0 + 1)
    assert accounts.get("王").password_hash == "scrypt:1$e$f"
    assert [o.name for o in accounts.list()] == sorted(["王", "li"])
    sessions.open("h1", "王", "csrf", T0)
    assert accounts.remove("王") and not accounts.remove("王")
    assert accounts.get("王") is None
    assert sessions.get("h1", T0 + 1, idle_seconds=HOUR, max_age=10 * HOUR) is None


# ---- console sessions ------------------------------------------------------------------------

@all_backends()
@pytest.mark.parametrize("visits, alive", [
    ([0.5], [True]),
    ([0.5, 1.4, 2.3], [True, True, True]),  # each visit restarts the idle clock
    ([1.5], [False]),  # idle longer than an hour
    ([1.5, 1.6], [False, False]),  # an expired session stays gone
    ([0.9, 1.8, 2.7, 3.6], [True, True, True, False]),  # older than max_age (3 h) even if busy
])
def test_console_sessions_expire_when_idle_or_old(store, visits, alive):
    """idle_seconds = 1 h, max_age = 3 h."""
    sessions = store.console.sessions
    sessions.open("h1", "王", "tok", T0)
    found = [sessions.get("h1", T0 + v * HOUR, idle_seconds=HOUR, max_age=3 * HOUR) for v in visits]
    assert [s is not None for s in found] == alive
    assert all(s.operator == "王" and s.csrf == "tok" for s in found if s)


@all_backends()
def test_logout_ends_one_session_and_everywhere_ends_all(store):
    """close_console_session ends one browser; close_operator_sessions every one of that operator."""
    sessions = store.console.sessions
    for token, who in (("a", "王"), ("b", "王"), ("c", "li")):
        sessions.open(token, who, "x", T0)
    sessions.close("a")
    alive = {t: sessions.get(t, T0, HOUR, HOUR) is not None for t in "abc"}
    assert alive == {"a": False, "b": True, "c": True}
    assert sessions.close_all("王") == 1
    assert sessions.get("b", T0, HOUR, HOUR) is None and sessions.get("c", T0, HOUR, HOUR)


# ---- login throttle --------------------------------------------------------------------------

@all_backends()
def test_login_failures_are_counted_per_scope_and_forgotten(store):
    """Failures count per scope within the window; old ones are dropped; clear forgets a scope."""
    throttle = store.console.throttle
    for i in range(3):
        throttle.record(("account:王", "address:1.2.3.4"), T0 + i, forget_before=T0 - 600)
    throttle.record(("account:li", "address:1.2.3.4"), T0 + 700, forget_before=T0 + 100)
    found = throttle.failures(("account:王", "account:li", "address:1.2.3.4", "address:9"), T0 - 600)
    assert found == {"account:li": [T0 + 700], "address:1.2.3.4": [T0 + 700]}  # T0..T0+2 dropped
    throttle.clear(("account:li",))
    assert throttle.failures(("account:li", "address:1.2.3.4"), 0) == {"address:1.2.3.4": [T0 + 700]}


# ---- who did what ----------------------------------------------------------------------------

@all_backends()
def test_events_name_the_operator_and_replies_queue_in_the_same_step(store):
    """resolve, reopen, reply and note events carry the actor; a reply's message is queued with it."""
    tickets = store.tickets
    ticket, _ = tickets.create(make_ticket(), "m1", [])
    message = {"target": "customer", "user": "u1", "payload": {"text": "好了"}}
    assert tickets.add_event(ticket.id, T0 + 1, "replied", "好了", "王", outbox=[message]).id == ticket.id
    tickets.add_event(ticket.id, T0 + 2, "note", "已联系财务", "li")
    tickets.resolve(ticket.id, T0 + 3, [], actor="王")
    assert tickets.reopen(ticket.id, T0 + 4, actor="li").status == "open"
    assert tickets.reopen(ticket.id, T0 + 5, actor="li").status == "open"  # already open: no event
    events = [(e["kind"], e["actor"], e["detail"]) for e in tickets.events(ticket.id)]
    assert events == [("created", "", "channel leqi-channel-missing"), ("replied", "王", "好了"),
                      ("note", "li", "已联系财务"), ("resolved", "王", ""), ("reopened", "li", "")]
    assert [(r.ticket_id, r.payload) for r in pending(store)] == [(ticket.id, {"text": "好了"})]
    assert tickets.add_event(999, T0, "note", "x", "王") is None and tickets.reopen(999, T0) is None


# ---- search ----------------------------------------------------------------------------------

TICKETS = [  # (source key, user, kind, tax ID, words, hours after T0, resolved)
    ("k1", "u1", "channel", "91110108551385082Q", "数电配置里没有乐企通道", 0, True),
    ("k2", "u2", "human", "", "转人工 100%急", 1, False),
    ("k3", "u3", "channel", "91320000MA1X2Y3Z4W", "乐企通道不显示", 30, False),
    ("k4", "u1", "channel", "91110108551385082Q", "还是没有通道", 50, False),
]


@pytest.fixture
def filled(store):
    """The TICKETS in the store; {source key: ticket id}."""
    ids = {}
    for key, user, kind, tax_id, words, hours, resolved in TICKETS:
        ticket, _ = store.tickets.create(make_ticket(user=user, kind=kind, tax_id=tax_id, words=words,
                                                     now=T0 + hours * HOUR), key, [])
        ids[key] = ticket.id
        if resolved:
            store.tickets.resolve(ticket.id, T0 + (hours + 2) * HOUR, [])
    return ids


@all_backends(["sqlite", "postgres"])
@pytest.mark.parametrize("query, expected", [
    (TicketQuery(), ["k4", "k3", "k2", "k1"]),  # open first, newest first
    (TicketQuery(text="551385082"), ["k4", "k1"]),  # part of a tax ID
    (TicketQuery(text="9111 0108-5513 85082q"), ["k4", "k1"]),  # spaces, hyphens, lower case
    (TicketQuery(text="乐企通道"), ["k3", "k1"]),  # the customer's words
    (TicketQuery(text="100%"), ["k2"]),  # LIKE wildcards are literal
    (TicketQuery(text="%"), ["k2"]),
    (TicketQuery(text="_"), []),
    (TicketQuery(status="open"), ["k4", "k3", "k2"]),
    (TicketQuery(status="resolved"), ["k1"]),
    (TicketQuery(kind="human"), ["k2"]),
    (TicketQuery(since=T0 + 1 * HOUR, until=T0 + 31 * HOUR), ["k3", "k2"]),
    (TicketQuery(limit=2), ["k4", "k3"]),
    (TicketQuery(offset=2, limit=2), ["k2", "k1"]),
])
def test_search_finds_by_words_tax_id_and_filters(store, filled, query, expected):
    """The list's search box and filters; the total counts every match, not one page."""
    page = store.console.tickets.search(query)
    assert [next(k for k, i in filled.items() if i == t.id) for t in page.tickets] == expected
    assert page.total == (len(expected) if query.limit >= 4 else 4)


@all_backends(["sqlite", "postgres"])
def test_search_by_ticket_number(store, filled):
    """T000003, 000003 and 3 all find ticket 3 (and only words/tax IDs that contain it)."""
    number = store.tickets.get(filled["k3"]).number
    for text in (number, number.lower(), number[1:], str(filled["k3"])):
        assert filled["k3"] in [t.id for t in store.console.tickets.search(TicketQuery(text=text)).tickets]


# ---- insight rows ----------------------------------------------------------------------------

@all_backends(["sqlite", "postgres", "redis"])
def test_insight_rows_keep_to_the_range(store, filled):
    """Tickets opened and resolved, hits, clarifications and unanswered questions within [since, until)."""
    take_turn(store, "m1", now=T0, hits=("leqi-ids-swapped",), clarified=("乐企怎么弄",))
    take_turn(store, "m2", now=T0 + 100 * HOUR, hits=("greeting",))
    for i, text in enumerate(["收费吗", "收费吗", "红字发票"]):
        take_turn(store, f"q{i}", now=T0 + i, unanswered=(text,))
    rows = store.console.insight.rows(T0, T0 + 48 * HOUR, top=1)
    assert sorted(rows["tickets"]) == [(T0, T0 + 2 * HOUR), (T0 + HOUR, None), (T0 + 30 * HOUR, None)]
    assert rows["resolved"] == [(T0, T0 + 2 * HOUR)]
    assert rows["hits"] == [(T0, "leqi-ids-swapped")] and rows["clarified"] == [T0]
    assert sorted(rows["unanswered"]) == [T0, T0 + 1, T0 + 2]
    assert [(r["text"], r["count"]) for r in rows["top_unanswered"]] == [("收费吗", 2)]


# ---- older databases -------------------------------------------------------------------------

def test_a_database_from_before_the_actor_column_gets_it(tmp_path):
    """A ticket_events table without `actor` is given the column at start; old rows read as ""."""
    path = tmp_path / "old.db"
    Db(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE ticket_events")
        conn.execute("CREATE TABLE ticket_events (id INTEGER PRIMARY KEY, ticket_id INTEGER NOT NULL, "
                     "at FLOAT, kind VARCHAR, detail TEXT)")
        conn.execute("INSERT INTO ticket_events (ticket_id, at, kind, detail) VALUES (1, 1.0, 'created', '')")
    store = sql_store(Db(f"sqlite:///{path}"))
    try:
        ticket, _ = store.tickets.create(make_ticket(), "m1", [])
        store.tickets.resolve(ticket.id, T0, [], actor="王")
        assert [(e["kind"], e["actor"]) for e in store.tickets.events(ticket.id)] == [
            ("created", ""), ("created", ""), ("resolved", "王")]
    finally:
        store.close()
