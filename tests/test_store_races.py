"""The Store contract under concurrency: threads and processes racing on one key, every backend."""
from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from itertools import chain

import pytest

from bot.store.base import TurnRecord
from tests.store_cases import OPS, SHARED, T0, all_backends, make_ticket, open_backend, pending, queue, take_turn


def race_message(store, i):
    """One worker handling a retried message whose work opens a ticket of its own and counts a hit."""
    def work(tx):
        """Opens a ticket only this worker would open."""
        ticket, _ = tx.tickets.create(make_ticket(words=f"w{i}"), f"race-src-{i}", [OPS])
        return TurnRecord(reply=ticket.number, hits=("human-agent",))
    return take_turn(store, "race", work=work)


def abandon(store):
    """An attempt at the message that began and died before committing (a killed worker)."""
    with store.turns.turn("race", "u1", T0 - 10):
        pass


def race_ticket(store, i):
    """One worker handling a retried message that opens a ticket."""
    ticket, created = store.tickets.create(make_ticket(words=f"w{i}"), "race-src", [OPS])
    return ticket.id, created


def race_outbox(store, i):
    """One delivery worker draining the outbox (odd workers deliver to customers only)."""
    claimed, target = [], "customer" if i % 2 else None
    while rows := store.outbox.claim(T0, limit=3, target=target, ops_per_minute=20):
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


def check_messages(store, results):
    """Exactly one worker's work ran: one ticket, one ops row, one hit; every answer is its reply."""
    tickets = store.tickets.list()
    assert len(tickets) == 1 and len(pending(store)) == 1
    assert store.reports.report()["hits"] == {"human-agent": 1}
    assert {reply for status, reply in results if status != "busy"} == {tickets[0].number}


def check_tickets(store, results):
    """One ticket, created once, notified once."""
    assert len({ticket_id for ticket_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert len(store.tickets.list()) == 1 and len(pending(store)) == 1


def check_outbox(results):
    """No row is claimed twice; every customer row goes; the robot gets only its 20 a minute."""
    claimed = list(chain.from_iterable(results))
    assert len(claimed) == len(set(claimed))
    assert sorted(target for _, target in claimed) == ["customer"] * 40 + ["ops"] * 20


@all_backends()
@pytest.mark.parametrize("stale", [False, True])
def test_threads_race_one_message(store, stale):
    """8 threads get the same retried message (maybe left by a dead worker): one acts on it."""
    if stale:
        abandon(store)
    check_messages(store, in_threads(store, race_message))


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
def test_processes_race_one_message(store, spec, stale):
    """4 worker processes get the same retried message (maybe left by a dead one): one acts on it."""
    if stale:
        abandon(store)
    check_messages(store, in_processes(spec, race_message))


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
    results = in_processes(spec, race_message, open_first=False)
    store = open_backend(spec)
    try:
        check_messages(store, results)
    finally:
        store.close()
