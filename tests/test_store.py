"""The Store contract on every backend: SQLite file/memory, PostgreSQL, Redis over SQLite."""
from __future__ import annotations

import multiprocessing
import threading
import uuid
from dataclasses import replace
from concurrent.futures import ThreadPoolExecutor
from itertools import chain

import pytest
import redis
from sqlalchemy import create_engine, text

from bot.config import StorageConfig
from bot.model import Session, Stage, Ticket
from bot.store import RedisState, SqlStore, open_store
from bot.store.base import Claim, TurnRecord

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
    store.save_session("u1", replace(session, tax_id="ignored"))
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
    assert history[1:] == [("resolved", ""), ("attached", "media-1"), ("reopened", ""),
                           ("attached", "media-2")]
    with pytest.raises(KeyError):
        store.attach_to_ticket(404, "media-3", T0, [])


# ---- outbox --------------------------------------------------------------------------------

def queue(store, target: str, count: int, now=T0, user="u1") -> list[int]:
    """Queue `count` rows for `target`; their ids."""
    payload = {"markdown": "m"} if target == "ops" else {"text": "t"}
    return [store.queue_message({"target": target, "user": user, "payload": payload}, None, now)
            for _ in range(count)]


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
    rows = store.claim_outbox(T0 + 10, limit=limit, target=target)
    assert [names[r.id] for r in rows] == expected
    assert {r.status for r in rows} == {"sending"}
    again = store.claim_outbox(T0 + 10, limit=limit, target=target)
    assert not {r.id for r in again} & {r.id for r in rows}


@all_backends()
def test_outbox_retry_sent_and_stale_requeue(store):
    """A failed send comes back later with attempts + 1; a dead worker's rows are requeued."""
    row_id, other = queue(store, "ops", 2)
    store.claim_outbox(T0, target="ops")
    store.outbox_retry(row_id, T0 + 30, "robot 502")
    store.outbox_sent(other, T0 + 1)
    assert store.claim_outbox(T0 + 29) == []
    [retried] = store.claim_outbox(T0 + 30)
    assert (retried.id, retried.attempts) == (row_id, 1)
    assert store.requeue_stale_sending(T0 + 30) == 0
    assert store.requeue_stale_sending(T0 + 31) == 1
    assert [r.id for r in store.claim_outbox(T0 + 40)] == [row_id]


@all_backends()
def test_held_messages_go_with_the_next_reply_once(store):
    """Held customer messages are taken once, by their user only."""
    mine = queue(store, "customer", 2, user="u1")
    theirs = queue(store, "customer", 1, user="u2")
    store.claim_outbox(T0)
    for row_id in mine + theirs:
        store.outbox_hold(row_id, "45015 window closed")
    assert store.claim_outbox(T0 + 1) == []
    taken = store.take_held("u1", T0 + 5)
    assert [(r.id, r.status, r.payload) for r in taken] == [(i, "sent", {"text": "t"}) for i in mine]
    assert store.take_held("u1", T0 + 6) == []
    assert [r.id for r in store.take_held("u2", T0 + 6)] == theirs


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
        store.claim_outbox(T0 - 120, limit=20, target="ops")
        for row_id in ids:
            store.outbox_sent(row_id, sent_at)
    queue(store, "ops", 30, T0 - 100)
    store.claim_outbox(T0, limit=in_flight, target="ops")
    queue(store, "customer", 30, T0 - 100)
    rows = store.claim_outbox(T0 + 1, limit=100, ops_per_minute=20)
    assert sum(r.target == "ops" for r in rows) == expected
    assert sum(r.target == "customer" for r in rows) == 30


@all_backends(["memory"])
def test_claim_outbox_rejects_unknown_target(store):
    """A typo in the target is a clear error, not an empty result."""
    with pytest.raises(ValueError, match="fax"):
        store.claim_outbox(T0, target="fax")


# ---- analytics and tokens ------------------------------------------------------------------

@all_backends()
def test_report_counts_questions_hits_and_tickets(store):
    """Authors see repeated unanswered questions first, hits per intent, tickets per status."""
    for i, question in enumerate(["红字发票怎么开", "收费吗", "红字发票怎么开"]):
        store.log_unanswered("u1", question, T0 + i)
    for intent in ["greeting", "leqi-ids-swapped", "greeting"]:
        store.log_hit(intent, T0)
    store.create_ticket(make_ticket(), "k1", [])
    assert store.report() == {
        "unanswered": [{"text": "红字发票怎么开", "count": 2, "last_at": T0 + 2},
                       {"text": "收费吗", "count": 1, "last_at": T0 + 1}],
        "hits": {"greeting": 2, "leqi-ids-swapped": 1},
        "tickets": {"open": 1},
        "outbox": {},
    }


@all_backends()
@pytest.mark.parametrize("writes, now, expected", [
    ([("tok-1", T0 + 7200)], T0, "tok-1"),
    ([("tok-1", T0 + 7200)], T0 + 7200, None),  # expired
    ([("tok-1", T0 + 7200), ("tok-2", T0 + 9000)], T0 + 7300, "tok-2"),  # refreshed
    ([("tok-1", T0 + 7200), ("", 0.0)], T0, None),  # invalidated after a 40001
    ([], T0, None),
])
def test_tokens_valid_until_expiry(store, writes, now, expected):
    """Workers share one access token until it expires or is invalidated."""
    for value, expires_at in writes:
        store.put_token("wechat", value, expires_at)
    assert store.get_token("wechat", now) == expected
    assert store.get_token("wecom", now) is None


# ---- open_store ----------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///{tmp}/new/dir/bot.db"])
def test_open_store_sqlite(tmp_path, url):
    """SQLite works in memory or in a file whose folder does not exist yet."""
    store = open_store(StorageConfig(url=url.format(tmp=tmp_path)))
    assert isinstance(store, SqlStore)
    store.remember_tax_id("u1", "X")
    assert store.load_session("u1").tax_id == "X"
    store.close()


def test_open_store_with_redis(tmp_path, redis_url):
    """A redis_url fronts the SQL store with RedisState."""
    store = open_store(StorageConfig(url=f"sqlite:///{tmp_path}/bot.db", redis_url=redis_url))
    assert isinstance(store, RedisState) and isinstance(store.inner, SqlStore)
    store.close()


def test_open_store_rejects_unknown_database():
    """A URL for an unsupported database is a clear error."""
    with pytest.raises(ValueError, match="unsupported storage url"):
        open_store(StorageConfig(url="mysql://root@127.0.0.1/bot"))


# ---- concurrency: workers racing on one key ------------------------------------------------

def race_claim(store, _i):
    """One worker's claim of a WeChat message that was retried."""
    return store.claim_message("race", T0).status


def race_ticket(store, i):
    """One worker handling a retried message that opens a ticket."""
    ticket, created = store.create_ticket(make_ticket(words=f"w{i}"), "race-src", [OPS])
    return ticket.id, created


def race_outbox(store, i):
    """One delivery worker draining the outbox (odd workers deliver to customers only)."""
    claimed, target = [], "customer" if i % 2 else None
    while rows := store.claim_outbox(T0, limit=3, target=target, ops_per_minute=20):
        claimed += [(row.id, row.target) for row in rows]
    return claimed


def fill_outbox(store):
    """40 ops + 40 customer rows, due."""
    queue(store, "ops", 40, T0 - 5)
    queue(store, "customer", 40, T0 - 5)


def in_threads(store, job, count=8):
    """Run `job` in `count` threads released at once; their results."""
    barrier = threading.Barrier(count)

    def run(i):
        """Wait for all threads, then race."""
        barrier.wait(timeout=60)
        return job(store, i)
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def _process_main(job, spec, i, barrier, results, open_first):
    """A worker process: open the store (before or after the start line), run `job`."""
    store = open_backend(spec) if open_first else None
    try:
        barrier.wait(timeout=60)
        store = store or open_backend(spec)
        results.put((i, job(store, i)))
    except Exception as exc:  # reported to the parent, which fails the test
        results.put((i, f"error: {exc!r}"))
    finally:
        if store is not None:
            store.close()


def in_processes(spec, job, count=4, open_first=True):
    """Run `job` in `count` fresh processes released at once; their results by index."""
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(count), ctx.Queue()
    procs = [ctx.Process(target=_process_main, args=(job, spec, i, barrier, results, open_first))
             for i in range(count)]
    for proc in procs:
        proc.start()
    out = dict(results.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
    return [out[i] for i in range(count)]


def check_claims(results):
    """Exactly one worker processes the message."""
    assert sorted(results) == ["busy"] * (len(results) - 1) + ["new"]


def check_tickets(store, results):
    """One ticket, created once, notified once."""
    assert len({ticket_id for ticket_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert len(store.list_tickets()) == 1 and len(pending(store)) == 1


def check_outbox(results):
    """No row is claimed twice; every customer row goes; the robot gets only its 20 a minute."""
    claimed = list(chain.from_iterable(results))
    assert len(claimed) == len(set(claimed))
    assert sorted(target for _, target in claimed) == ["customer"] * 40 + ["ops"] * 20


@all_backends()
@pytest.mark.parametrize("stale", [False, True])
def test_threads_race_claim_message(store, stale):
    """8 threads get the same retried message (maybe left by a dead worker): one processes it."""
    if stale:
        store.claim_message("race", T0 - 10)
    check_claims(in_threads(store, race_claim))


@all_backends()
def test_threads_race_create_ticket(store):
    """8 threads open a ticket for the same message: one ticket, one ops notification."""
    check_tickets(store, in_threads(store, race_ticket))


@all_backends()
def test_threads_race_claim_outbox(store):
    """8 delivery threads never send a row twice and respect the robot limit together."""
    fill_outbox(store)
    check_outbox(in_threads(store, race_outbox))


@all_backends(SHARED)
@pytest.mark.parametrize("stale", [False, True])
def test_processes_race_claim_message(store, spec, stale):
    """4 worker processes get the same retried message (maybe left by a dead one): one processes it."""
    if stale:
        store.claim_message("race", T0 - 10)
    check_claims(in_processes(spec, race_claim))


@all_backends(SHARED)
def test_processes_race_create_ticket(store, spec):
    """4 worker processes open a ticket for the same message: one ticket, one notification."""
    check_tickets(store, in_processes(spec, race_ticket))


@all_backends(SHARED)
def test_processes_race_claim_outbox(store, spec):
    """4 processes draining the outbox never send a row twice and share the robot limit."""
    fill_outbox(store)
    check_outbox(in_processes(spec, race_outbox))


@all_backends(SHARED)
def test_processes_create_schema_at_once(spec):
    """4 workers starting together on an empty database all come up and share one schema."""
    assert in_processes(spec, race_claim, open_first=False).count("new") == 1


@all_backends()
def test_a_finished_turn_writes_reply_state_transcript_and_analytics_together(store):
    """One handled message: retries get its reply; state, transcript, hits, questions are kept."""
    assert store.claim_message("wechat:m1", T0).status == "new"
    state = Session(stage=Stage.AWAITING_TAX_ID, purpose="leqi-channel-missing", updated_at=T0)
    store.finish_turn(TurnRecord(user="u1", now=T0, key="wechat:m1", reply="请回复税号", session=state,
                                 lines=(("in", "乐企通道不显示"), ("out", "请回复税号")),
                                 hits=("leqi-channel-missing",), unanswered=("收费吗",)))
    assert store.claim_message("wechat:m1", T0 + 1) == Claim("done", "请回复税号")
    assert store.load_turn("u1") == (state, False)
    assert [m["text"] for m in store.recent_messages("u1")] == ["乐企通道不显示", "请回复税号"]
    report = store.report()
    assert report["hits"] == {"leqi-channel-missing": 1} and report["unanswered"][0]["text"] == "收费吗"


@all_backends()
def test_a_turn_can_end_the_session_and_sees_held_messages(store):
    """Unsubscribe ends the state; a held follow-up is visible to the next turn."""
    store.save_session("u1", Session(stage=Stage.AWAITING_CHOICE, updated_at=T0))
    store.finish_turn(TurnRecord(user="u1", now=T0, end_session=True))
    assert store.load_turn("u1") == (Session(), False)
    row_id = store.queue_message({"target": "customer", "user": "u1", "payload": {"text": "已处理"}}, None, T0)
    store.claim_outbox(T0, target="customer")
    store.outbox_hold(row_id, "45015")
    assert store.load_turn("u1")[1] is True and store.has_held("u2") is False


@all_backends()
def test_begin_turn_claims_and_loads_in_one_step(store):
    """The first attempt gets the state; a concurrent retry is busy; a later one gets the reply."""
    state = Session(stage=Stage.AWAITING_TAX_ID, purpose="leqi-channel-missing", updated_at=T0)
    store.save_session("u1", state)
    store.remember_tax_id("u1", "91110000600037341L")
    assert store.begin_turn("wechat:m1", "u1", T0) == (Claim("new"), replace(state, tax_id="91110000600037341L"), False)
    assert store.begin_turn("wechat:m1", "u1", T0 + 1)[0] == Claim("busy")
    store.finish_turn(TurnRecord(user="u1", now=T0 + 1, key="wechat:m1", reply="已提交工单"))
    assert store.begin_turn("wechat:m1", "u1", T0 + 2)[0] == Claim("done", "已提交工单")
