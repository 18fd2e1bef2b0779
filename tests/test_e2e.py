"""End to end: `python -m bot serve` with 4 gunicorn workers, WeChat delivering safe-mode messages,
FakeWeChat as the customer-service API and FakeRobot as the ops group, on SQLite and on
PostgreSQL + Redis. One server per backend serves every scenario (each with its own customers).
"""
from __future__ import annotations

import secrets
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from threading import Barrier

import psycopg
import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.e2e_helpers import (Account, InFlight, ServerProcess, Stack, free_port, poll, run_cli,
                               socket_holder, start_bot, write_config)
from tests.fakes import FakeRobot, FakeWeChat

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

WORKERS = 4
QUESTION = "数电配置里没有乐企联用通道"
TAX_ID = "91110108551385082Q"
TAX_ID_TEXT = f"我们税号是 {TAX_ID}，麻烦了"
SEND = "/cgi-bin/message/custom/send"
STEP_3 = "更新配置"
WECHAT_RETRY_SECONDS = 5  # WeChat resends an unanswered message after 5 s


class Backend:
    """A storage backend for one server: its URLs, a store-wide lock, a look at the outbox."""

    name = "?"
    driver = "sqlite"
    storage_url = ""
    redis_url = ""
    _engine = None

    def outbox(self, user: str, ticket_id: int | None = None) -> list[tuple[str, str]]:
        """(target, status) of every outbox row for `user`, or of ticket `ticket_id` (its ops
        updates have no user), oldest first."""
        if self._engine is None:
            self._engine = create_engine(make_url(self.storage_url).set(drivername=self.driver))
        where, value = ('ticket_id', ticket_id) if ticket_id is not None else ('"user"', user)
        query = text(f'SELECT target, status FROM outbox WHERE {where} = :v ORDER BY id')
        with self._engine.connect() as conn:
            return [tuple(row) for row in conn.execute(query, {"v": value})]

    def hold_lock(self):
        """Context manager: block the bot's next store write until exit (subclasses)."""
        raise NotImplementedError

    def wait_blocked(self, server: ServerProcess, flight: InFlight) -> None:
        """Until `flight` is inside a worker and stuck on the held lock (subclasses)."""
        raise NotImplementedError

    def cleanup(self) -> None:
        """Close the inspection engine (subclasses also drop what the run stored)."""
        if self._engine is not None:
            self._engine.dispose()


class SqliteBackend(Backend):
    """A SQLite file (WAL); `BEGIN IMMEDIATE` from the test holds every writer on busy_timeout."""

    name = "sqlite"

    def __init__(self, folder: Path):
        """The database file lives in `folder`."""
        self.path = folder / "bot.db"
        self.storage_url = f"sqlite:///{self.path}"

    @contextmanager
    def hold_lock(self):
        """Hold SQLite's write lock: readers go on, the bot's next write waits."""
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=10)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    def wait_blocked(self, server: ServerProcess, flight: InFlight) -> None:
        """Until a worker has accepted the connection: it cannot answer before the lock is gone
        (its first step, claiming the MsgId, is a write)."""
        poll(lambda: socket_holder(server.port, flight.client_port, server.worker_pids()), 20,
             "a worker to take the request")


class PostgresRedisBackend(Backend):
    """PostgreSQL in a fresh schema plus Redis (dedupe, sessions, token) with run-unique keys."""

    name = "postgres+redis"
    driver = "postgresql+psycopg"

    def __init__(self, postgres_url: str, redis_url: str, tag: str):
        """Create the schema e2e_<tag>; Redis keys of this run all contain `tag`."""
        self.schema = f"e2e_{tag}"
        self.admin_url = make_url(postgres_url).set(drivername="postgresql").render_as_string(False)
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{self.schema}"')
        self.storage_url = make_url(postgres_url).update_query_dict(
            {"options": f"-csearch_path={self.schema}"}).render_as_string(False)
        self.redis_url, self.tag = redis_url, tag

    @contextmanager
    def hold_lock(self):
        """LOCK TABLE tickets: the request is claimed, answered up to the ticket insert, then waits."""
        with psycopg.connect(self.admin_url, options=f"-csearch_path={self.schema}") as conn:
            conn.execute("LOCK TABLE tickets IN ACCESS EXCLUSIVE MODE")
            yield
            conn.rollback()

    def wait_blocked(self, server: ServerProcess, flight: InFlight) -> None:
        """Until some backend waits for the tickets lock (the worker is inside create_ticket)."""
        query = "SELECT count(*) FROM pg_locks WHERE relation = to_regclass(%s) AND NOT granted"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            poll(lambda: conn.execute(query, (f"{self.schema}.tickets",)).fetchone()[0], 20,
                 "a worker to wait on the tickets lock")

    def cleanup(self) -> None:
        """Drop the schema and this run's Redis keys."""
        super().cleanup()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        client = redis.Redis.from_url(self.redis_url)
        try:
            for key in client.scan_iter(f"*{self.tag}*"):
                client.delete(key)
        finally:
            client.close()


def make_backend(request, kind: str, folder, tag: str):
    """The storage for one server: a SQLite file, or a fresh PostgreSQL schema + Redis."""
    if kind == "sqlite":
        return SqliteBackend(folder)
    return PostgresRedisBackend(request.getfixturevalue("postgres_url"),
                                request.getfixturevalue("redis_url"), tag)


@pytest.fixture(scope="module", params=[
    "sqlite", pytest.param("postgres+redis", marks=[pytest.mark.postgres, pytest.mark.redis])])
def stack(request, tmp_path_factory):
    """The real server on a free port with its fakes; stopped (workers too) even when a test fails."""
    tag = f"{secrets.randbelow(10**8):08d}"
    folder = tmp_path_factory.mktemp(f"e2e-{request.param.replace('+', '-')}")
    account = Account(app_id=f"wx{tag}{secrets.token_hex(4)}")
    wechat, robot = FakeWeChat(app_id=account.app_id, secret=secrets.token_hex(16)), FakeRobot()
    backend = make_backend(request, request.param, folder, tag)
    server = None
    try:
        port = free_port()
        config = write_config(folder, port, account, backend, wechat, robot)
        server = start_bot(config, port, WORKERS)
        server.wait_ready()
        yield Stack(server, backend, account, wechat, robot, config, tag)
    finally:
        if server is not None:
            server.stop()
        wechat.close()
        robot.close()
        backend.cleanup()


def channel_ticket(stack: Stack, customer) -> tuple[dict, str]:
    """The customer asks about the missing channel and gives the tax ID: (their ticket, the reply)."""
    assert "税号" in customer.say(QUESTION)
    reply = customer.say(TAX_ID_TEXT)
    (ticket,) = stack.tickets(customer.user)
    return ticket, reply


def all_sent(rows: list[tuple[str, str]]) -> bool:
    """Every outbox row is delivered (none pending, sending or held)."""
    return bool(rows) and all(status == "sent" for _, status in rows)


def test_three_concurrent_deliveries_make_one_ticket_one_ops_message_one_reply(stack):
    """WeChat's retries racing on 4 workers. Asserted: every delivery is answered with HTTP 200;
    at least one carries the reply and all that carry one carry the same (a bare "success" is
    allowed only beside one that carries it); one ticket; one message in the ops group."""
    customer = stack.customer()
    assert "税号" in customer.say(QUESTION)
    xml = customer.message(TAX_ID_TEXT)
    start = Barrier(3)

    def deliver(_):
        """One of the three identical deliveries, released together."""
        start.wait(timeout=10)
        return customer.post(xml)

    with ThreadPoolExecutor(3) as pool:
        replies = list(pool.map(deliver, range(3)))
    (ticket,) = stack.tickets(customer.user)
    carried = {reply for reply in replies if reply is not None}
    assert len(carried) == 1 and ticket["number"] in carried.pop() and ticket["tax_id"] == TAX_ID
    stack.wait_outbox(customer.user, all_sent, "the ops notification to go out")
    assert len(stack.ops_messages(customer.user)) == 1


def test_robot_outage_keeps_the_ticket_and_notifies_once_when_back(stack):
    """The group robot answers 500: the ticket is kept and nothing reaches ops; once it is back,
    the notification arrives exactly once (the outbox's first backoff is 5 s)."""
    customer = stack.customer()
    stack.robot.down()
    try:
        attempts_before = len(stack.robot.calls)
        ticket, reply = channel_ticket(stack, customer)
        poll(lambda: len(stack.robot.calls) > attempts_before, 20, "a delivery attempt during the outage")
        stack.wait_outbox(customer.user, lambda rows: rows == [("ops", "pending")], "the row back in the queue")
        assert ticket["number"] in reply and stack.ops_messages(customer.user) == []
    finally:
        stack.robot.up()
    stack.wait_outbox(customer.user, all_sent, "the ops notification after the outage", timeout=45)
    (message,) = stack.ops_messages(customer.user)
    assert ticket["number"] in message and TAX_ID in message


def test_worker_killed_mid_request_loses_nothing_and_the_retry_gets_the_reply(stack):
    """The request is stuck in the store (lock held by the test) when every worker is SIGKILLed:
    WeChat sees the connection drop, retries the same MsgId 5 s later and gets the ticket reply;
    one ticket, one ops message."""
    customer = stack.customer()
    assert "税号" in customer.say(QUESTION)
    xml = customer.message(TAX_ID_TEXT)
    path, body, _ = customer.request(xml)
    sent_at = time.monotonic()
    with stack.backend.hold_lock():
        first = InFlight(stack.server.port, path, body)
        stack.backend.wait_blocked(stack.server, first)
        killed = stack.server.kill_workers()
    assert isinstance(first.error(), ConnectionError)
    stack.server.wait_respawn(killed)
    time.sleep(max(0.0, sent_at + WECHAT_RETRY_SECONDS - time.monotonic()))
    reply = customer.post(xml)
    (ticket,) = stack.tickets(customer.user)
    assert reply is not None and ticket["number"] in reply
    stack.wait_outbox(customer.user, all_sent, "the ops notification")
    assert len(stack.ops_messages(customer.user)) == 1


def test_resolve_sends_step_3_as_a_customer_service_message(stack):
    """Ops resolve with the CLI: the customer gets FAQ step 3 (更新配置) from WeChat's API, once."""
    customer = stack.customer()
    ticket, _ = channel_ticket(stack, customer)
    stack.wechat.user_message(customer.user)  # the 48 h window WeChat opened on their message
    run_cli(stack.config, "tickets", "resolve", str(ticket["id"]))
    stack.wait_outbox(customer.user, all_sent, "the follow-up to be delivered")
    (message,) = stack.cs_messages(customer.user)
    assert STEP_3 in message and ticket["number"] in message
    assert stack.tickets(customer.user)[0]["status"] == "resolved"


def test_resolve_held_by_45015_comes_back_in_the_next_passive_reply(stack):
    """WeChat refuses the customer-service message (45015, window closed): step 3 is held and
    delivered in the passive reply to the customer's next message, and not sent again."""
    customer = stack.customer()
    ticket, _ = channel_ticket(stack, customer)
    stack.wechat.user_message(customer.user)
    stack.wechat.fail_next(SEND, errcode=45015)
    run_cli(stack.config, "tickets", "resolve", str(ticket["id"]))
    stack.wait_outbox(customer.user, lambda rows: ("customer", "held") in rows, "the follow-up to be held")
    reply = customer.say("好的，谢谢")
    assert STEP_3 in reply and ticket["number"] in reply
    assert ("customer", "held") not in stack.backend.outbox(customer.user)
    assert stack.cs_messages(customer.user) == []
