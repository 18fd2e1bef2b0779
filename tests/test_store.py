"""The Store contract on every backend: SQLite file/memory, PostgreSQL, Redis over SQLite."""
from __future__ import annotations

import multiprocessing
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from sqlalchemy import create_engine, text

from bot.config import StorageConfig
from bot.model import Session, Stage, Ticket
from bot.store import RedisState, SqlStore, open_store

BACKENDS = ["sqlite", "memory", "postgres", "redis"]
SHARED = ["sqlite", "postgres", "redis"]  # state other processes can reach
T0 = 1_700_000_000.0
OPS = {"target": "ops", "payload": {"markdown": "**新工单**"}}


def open_backend(spec: dict):
    """A store from a picklable description (used by test processes too)."""
    inner = SqlStore(spec["url"])
    return RedisState(spec["redis_url"], inner, prefix=spec["prefix"]) if spec.get("redis_url") else inner


@pytest.fixture
def pg_schema(request, postgres_url):
    """A fresh PostgreSQL schema for one test; yields a URL whose search_path points at it."""
    name = f"store_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    sep = "&" if "?" in postgres_url else "?"
    yield f"{postgres_url}{sep}options=-csearch_path%3D{name}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
    admin.dispose()


@pytest.fixture
def redis_prefix(redis_url):
    """A unique key prefix, its keys deleted afterwards."""
    prefix = f"test-store:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


@pytest.fixture
def spec(request, tmp_path):
    """The backend description for the parametrized `backend` name."""
    kind = request.param
    if kind == "postgres":
        return {"url": request.getfixturevalue("pg_schema")}
    if kind == "memory":
        return {"url": "sqlite://"}
    url = f"sqlite:///{tmp_path}/state/bot.db"
    if kind == "redis":
        return {"url": url, "redis_url": request.getfixturevalue("redis_url"),
                "prefix": request.getfixturevalue("redis_prefix")}
    return {"url": url}


@pytest.fixture
def store(spec):
    """An open store for the backend; closed afterwards."""
    opened = open_backend(spec)
    yield opened
    opened.close()


def all_backends(names=BACKENDS):
    """Parametrize `spec` (and so `store`) over backends."""
    return pytest.mark.parametrize("spec", names, indirect=True)


def make_ticket(user="u1", now=T0, **extra) -> Ticket:
    """A ticket as the service hands it to create_ticket (id unassigned)."""
    fields = dict(id=0, user=user, kind="channel", intent="leqi-channel-missing", status="open",
                  tax_id="91110000600037341L", words="乐企没有通道", created_at=now)
    return Ticket(**{**fields, **extra})


def pending(store, target=None) -> list:
    """Every due row, claimed (the only public way to see what is queued)."""
    return store.claim_outbox(T0 + 10**6, limit=1000, target=target, ops_per_minute=10**6)


# ---- dedupe --------------------------------------------------------------------------------

@all_backends()
@pytest.mark.parametrize("steps", [
    [("claim", 0.0, "new")],
    [("claim", 0.0, "new"), ("claim", 1.0, "busy")],  # WeChat retry while processing
    [("claim", 0.0, "new"), ("claim", 4.5, "new"), ("claim", 5.0, "busy")],  # first worker died
    [("claim", 0.0, "new"), ("finish", 1.0, "ok"), ("claim", 9.0, "done:ok")],
    [("finish", 0.0, "late"), ("claim", 1.0, "done:late")],  # reply stored without a claim row
])
def test_claim_message_sequences(store, steps):
    """Retries get busy or the stored reply; a dead worker's claim is taken over after the lease."""
    for op, offset, expected in steps:
        if op == "finish":
            store.finish_message("m1", expected, T0 + offset)
            continue
        claim = store.claim_message("m1", T0 + offset, lease=4.0)
        assert (claim.status if claim.reply is None else f"{claim.status}:{claim.reply}") == expected


@all_backends(["sqlite", "memory", "postgres"])
def test_purge_messages_forgets_only_old_keys(store):
    """Old dedupe rows go; recent ones keep answering retries."""
    store.claim_message("old", T0)
    store.finish_message("old", "r", T0 + 1)
    store.claim_message("new", T0 + 100)
    store.finish_message("new", "r2", T0 + 101)
    assert store.purge_messages(T0 + 50) == 1
    assert store.claim_message("old", T0 + 200).status == "new"
    assert store.claim_message("new", T0 + 200).reply == "r2"


# ---- sessions and tax IDs ------------------------------------------------------------------

@all_backends()
@pytest.mark.parametrize("session", [
    Session(),
    Session(stage=Stage.AWAITING_TAX_ID, purpose="leqi-channel-missing", attempts=1,
            last_rejected="91110000600037341X", question="乐企没通道", updated_at=T0),
    Session(stage=Stage.AWAITING_CHOICE, choices=("a", "b"), question="怎么配置", updated_at=T0),
])
def test_session_round_trip_tax_id_from_users(store, session):
    """State survives; the tax ID comes from remember/forget, never from the saved session."""
    store.save_session("u1", Session(**{**session.to_dict(), "stage": session.stage, "tax_id": "ignored"}))
    assert store.load_session("u1") == session
    store.remember_tax_id("u1", "91110000600037341L")
    assert store.load_session("u1").tax_id == "91110000600037341L"
    store.end_session("u1")
    assert store.load_session("u1") == Session(tax_id="91110000600037341L")
    store.forget_tax_id("u1")
    assert store.load_session("u1") == Session()
    assert store.load_session("someone-else") == Session()


@all_backends()
def test_transcript_keeps_last_lines_oldest_first(store):
    """recent_messages returns the newest `limit` lines of that user only, in order."""
    for i in range(12):
        store.log_message("u1", "in" if i % 2 == 0 else "out", f"第{i}句", T0 + i)
    store.log_message("u2", "in", "别人", T0)
    lines = store.recent_messages("u1", limit=10)
    assert [line["text"] for line in lines] == [f"第{i}句" for i in range(2, 12)]
    assert lines[0] == {"direction": "in", "text": "第2句", "at": T0 + 2}
    assert store.recent_messages("nobody") == []


# ---- tickets -------------------------------------------------------------------------------

@all_backends()
def test_create_ticket_is_idempotent_on_source_key(store):
    """A retried message returns the first ticket and queues nothing more."""
    ticket, created = store.create_ticket(make_ticket(flags=("校验位未通过",)), "msg-1",
                                          lambda t: [{**OPS, "payload": {"markdown": t.number}}])
    again, created_again = store.create_ticket(make_ticket(words="again"), "msg-1", [OPS])
    assert (created, created_again) == (True, False)
    assert again == ticket == store.get_ticket(ticket.id)
    assert ticket.flags == ("校验位未通过",) and ticket.tax_id == "91110000600037341L"
    assert [row.payload for row in pending(store)] == [{"markdown": ticket.number}]
    assert [e["kind"] for e in store.ticket_events(ticket.id)] == ["created"]


@all_backends()
def test_bad_outbox_row_creates_nothing(store):
    """An invalid outbox row is a clear error and the ticket is rolled back with it."""
    with pytest.raises(ValueError, match="outbox row"):
        store.create_ticket(make_ticket(), "msg-bad", [OPS, {"target": "fax", "payload": {}}])
    assert store.list_tickets() == [] and pending(store) == []


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
        numbers[store.create_ticket(make_ticket(user=who, now=T0 + i), key, [])[0].id] = key
    store.resolve_ticket(next(n for n, k in numbers.items() if k == "k2"), T0 + 5, [])
    assert [numbers[t.id] for t in store.list_tickets(status=status, user=user)] == expected


@all_backends()
def test_resolve_ticket_queues_customer_message_once(store):
    """Resolving twice sends the customer one message; unknown tickets give None."""
    ticket, _ = store.create_ticket(make_ticket(), "msg-1", [])
    done = {"target": "customer", "user": "u1", "payload": {"text": "已处理"}}
    first = store.resolve_ticket(ticket.id, T0 + 60, [done])
    second = store.resolve_ticket(ticket.id, T0 + 90, [done])
    assert (first.status, first.resolved_at) == ("resolved", T0 + 60) and second == first
    assert [(r.target, r.user, r.payload) for r in pending(store)] == [("customer", "u1", {"text": "已处理"})]
    assert store.resolve_ticket(999, T0, [done]) is None
    assert [e["kind"] for e in store.ticket_events(ticket.id)] == ["created", "resolved"]


@all_backends()
def test_attach_reopens_resolved_ticket(store):
    """A screenshot on a resolved ticket reopens it and is forwarded to ops."""
    ticket, _ = store.create_ticket(make_ticket(), "msg-1", [])
    store.resolve_ticket(ticket.id, T0 + 60, [])
    forward = {"target": "ops", "payload": {"markdown": "截图"}}
    attached = store.attach_to_ticket(ticket.id, "media-1", T0 + 120, [forward])
    assert (attached.status, attached.resolved_at, attached.attachments) == ("open", None, ("media-1",))
    again = store.attach_to_ticket(ticket.id, "media-2", T0 + 130, [])
    assert again.attachments == ("media-1", "media-2") and store.get_ticket(ticket.id) == again
    assert [r.payload for r in pending(store)] == [{"markdown": "截图"}]
    history = [(e["kind"], e["detail"]) for e in store.ticket_events(ticket.id)]
    assert history[1:] == [("resolved", ""), ("attached", "media-1"), ("reopened", ""), ("attached", "media-2")]
    with pytest.raises(KeyError):
        store.attach_to_ticket(404, "media-3", T0, [])
