"""Store faults with the real server and WeChat's retry policy (5 s timeout, 3 retries): PostgreSQL
stopped and restarted, Redis shut down without saving and restarted, the SQLite disk full. Each
test counts lost and duplicated tickets, ops messages and replies: all must be zero.

Every customer asks about the missing 乐企 channel and then gives a tax ID, so each must end with
exactly one ticket, one ops message and one reply naming the ticket (passive, or a
customer-service message when the message waited in the spool).
"""
from __future__ import annotations

import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import requests

from tests.conftest import IN_CI
from tests.e2e_helpers import Account, Stack, free_port, poll, run_cli, start_bot, write_config
from tests.fakes import FakeRobot, FakeWeChat
from tests.fault_services import PgCluster, RedisServer, Tmpfs, deliver_like_wechat
from tests.test_e2e import Backend

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

QUESTION = "数电配置里没有乐企联用通道"
TAX_ID = "91110108551385082Q"
CUSTOMERS = 8
OUTAGE_SECONDS = 12  # longer than WeChat's whole retry window for one delivery attempt


@dataclass
class FaultBackend(Backend):
    """Storage URLs of one test (the fault services are owned by the test)."""

    storage_url: str = ""
    redis_url: str = ""
    driver: str = "sqlite"


def serve(folder, storage_url: str, redis_url: str = "", spool_dir: str = "", workers: int = 2):
    """The real server with its fakes on `storage_url`; a Stack (stop with `stop_stack`)."""
    tag = f"{secrets.randbelow(10**8):08d}"
    account = Account(app_id=f"wx{tag}{secrets.token_hex(4)}")
    wechat, robot = FakeWeChat(app_id=account.app_id, secret=secrets.token_hex(16)), FakeRobot()
    driver = "postgresql+psycopg" if storage_url.startswith("postgresql") else "sqlite"
    backend = FaultBackend(storage_url=storage_url, redis_url=redis_url, driver=driver)
    port = free_port()
    extra = {"storage": {"spool_dir": spool_dir}} if spool_dir else None
    config = write_config(folder, port, account, backend, wechat, robot, extra)
    server = start_bot(config, port, workers)
    server.wait_ready()
    return Stack(server, backend, account, wechat, robot, config, tag)


def stop_stack(stack: Stack) -> None:
    """Stop the server and its fakes."""
    stack.server.stop()
    stack.wechat.close()
    stack.robot.close()
    stack.backend.cleanup()


def health(stack: Stack) -> int:
    """GET /healthz's status."""
    try:
        return requests.get(f"{stack.server.url}/healthz", timeout=5).status_code
    except requests.RequestException:
        return 0


def flow(stack: Stack, customer, texts: list[str]) -> list:
    """Deliver `texts` one after the other as WeChat would; (user, Delivery) of each."""
    return [(customer.user, deliver_like_wechat(customer, customer.message(text))) for text in texts]


def run_all(stack: Stack, plans: list[tuple[object, list[str]]]) -> list:
    """Every customer's messages at once (each customer's in order)."""
    with ThreadPoolExecutor(len(plans)) as pool:
        return [d for ds in pool.map(lambda plan: flow(stack, *plan), plans) for d in ds]


def tickets_by_user(stack: Stack) -> dict[str, list[dict]]:
    """Every ticket (one `tickets list --json`), by customer."""
    found: dict[str, list[dict]] = {}
    for row in map(json.loads, run_cli(stack.config, "tickets", "list", "--json").stdout.splitlines()):
        found.setdefault(row["user"], []).append(row)
    return found


def tally(stack: Stack, customers: list, deliveries: list) -> dict:
    """Lost and duplicated tickets, ops messages and ticket replies, once the outbox has settled."""
    def settled():
        """Every customer has a ticket and every outbox row is delivered."""
        rows = [stack.backend.outbox(c.user) for c in customers]
        tickets = tickets_by_user(stack)
        return (all(rows) and all(status == "sent" for r in rows for _, status in r)
                and all(c.user in tickets for c in customers))
    try:
        poll(settled, 90, "spooled messages and the outbox to settle", interval=1.0)
    except AssertionError:
        pass  # the tally below says what is missing
    tickets = tickets_by_user(stack)
    counts = {"undelivered requests": sum(not d.delivered for _, d in deliveries)}
    for what, found in (("tickets", lambda c, t: len(t)),
                        ("ops messages", lambda c, t: len(stack.ops_messages(c.user))),
                        ("ticket replies", lambda c, t: ticket_replies(stack, c, t, deliveries))):
        per = [found(c, tickets.get(c.user, [])) for c in customers]
        counts[f"lost {what}"] = sum(n == 0 for n in per)
        counts[f"duplicated {what}"] = sum(max(0, n - 1) for n in per)
    return counts


def ticket_replies(stack: Stack, customer, tickets: list[dict], deliveries: list) -> int:
    """How many times the customer was told their ticket number (passive replies + pushes)."""
    if not tickets:
        return 0
    number = tickets[0]["number"]
    passive = sum(1 for user, d in deliveries if user == customer.user and d.reply and number in d.reply)
    return passive + sum(number in text for text in stack.cs_messages(customer.user))


ZERO = {"undelivered requests": 0, **{f"{kind} {what}": 0 for kind in ("lost", "duplicated")
                                      for what in ("tickets", "ops messages", "ticket replies")}}


def assert_nothing_lost(stack: Stack, customers: list, deliveries: list) -> None:
    """The tally is all zeros (else: the tally, every delivery's attempts and the server's log)."""
    counts = tally(stack, customers, deliveries)
    attempts = [(user[-4:], d.attempts) for user, d in deliveries]
    assert counts == ZERO, f"{counts}\n{attempts}\n{stack.server.log_tail(80)}"


def customers_of(stack: Stack, count: int = CUSTOMERS) -> list:
    """`count` new customers whose 48 h customer-service window is open."""
    found = [stack.customer() for _ in range(count)]
    for customer in found:
        stack.wechat.user_message(customer.user)
    return found


@pytest.fixture
def pg_cluster():
    """A throwaway PostgreSQL cluster on a free port."""
    cluster = PgCluster()
    yield cluster
    cluster.destroy()


def test_postgresql_stopped_mid_traffic_loses_and_doubles_nothing(pg_cluster, tmp_path):
    """Half the customers are mid-flow when PostgreSQL stops for 12 s; the others start during the
    outage, and every worker is killed and restarts while it lasts. Everything sent meanwhile is
    spooled and answered "received"; when PostgreSQL is back each message is processed in order
    and the ticket reply goes out as a customer-service message."""
    stack = serve(tmp_path, pg_cluster.url, spool_dir=str(tmp_path / "spool"))
    try:
        customers = customers_of(stack)
        early, late = customers[:4], customers[4:]
        deliveries = run_all(stack, [(c, [QUESTION]) for c in early])
        pg_cluster.stop()
        stopped = time.monotonic()
        deliveries += run_all(stack, [(c, [f"我们税号是 {TAX_ID}"]) for c in early]
                              + [(c, [QUESTION, f"税号 {TAX_ID}"]) for c in late])
        assert health(stack) == 503
        killed = stack.server.kill_workers()  # workers restarting mid-outage must boot and keep the spool
        poll(lambda: not (stack.server.worker_pids() & killed)
             and len(stack.server.worker_pids()) == stack.server.workers, 60, "workers to respawn")
        time.sleep(max(0.0, stopped + OUTAGE_SECONDS - time.monotonic()))
        pg_cluster.start()
        assert_nothing_lost(stack, customers, deliveries)
        assert health(stack) == 200
    finally:
        stop_stack(stack)


@pytest.fixture
def redis_server():
    """A private redis-server on a free port."""
    server = RedisServer()
    yield server
    server.destroy()


def test_redis_shutdown_nosave_and_restart_loses_no_flow(redis_server, tmp_path):
    """Every customer is waiting for their tax ID when Redis shuts down without saving: half answer
    while it is down (claims and state fall back to SQL), half after it restarted empty (state
    comes back from SQL). One ticket and one passive reply each."""
    stack = serve(tmp_path, f"sqlite:///{tmp_path}/bot.db", redis_server.url)
    try:
        customers = customers_of(stack)
        deliveries = run_all(stack, [(c, [QUESTION]) for c in customers])
        redis_server.shutdown_nosave()
        deliveries += run_all(stack, [(c, [f"我们税号是 {TAX_ID}"]) for c in customers[:4]])
        redis_server.start()
        deliveries += run_all(stack, [(c, [f"我们税号是 {TAX_ID}"]) for c in customers[4:]])
        assert_nothing_lost(stack, customers, deliveries)
        assert all(d.reply for _, d in deliveries)  # every answer was a real one, passive
    finally:
        stop_stack(stack)


@pytest.fixture
def full_disk():
    """A 16 MiB tmpfs for the SQLite database (its WAL alone may reach 4 MiB; root only: required in CI)."""
    try:
        disk = Tmpfs(16384)
    except OSError as exc:
        if IN_CI:
            pytest.fail(f"CI runs as root and must mount a tmpfs: {exc}")
        pytest.skip(f"disk-full test needs root to mount a tmpfs: {exc}")
    yield disk
    disk.destroy()


def test_disk_full_under_sqlite_spools_and_recovers(full_disk, tmp_path):
    """The database's disk fills up mid-traffic: /healthz says 503, messages are kept in the spool
    (on another disk) and answered "received"; once space is freed they are processed."""
    stack = serve(tmp_path, f"sqlite:///{full_disk.path}/bot.db", spool_dir=str(tmp_path / "spool"))
    try:
        customers = customers_of(stack)
        deliveries = run_all(stack, [(c, [QUESTION]) for c in customers[:4]])
        full_disk.fill()
        deliveries += run_all(stack, [(c, [f"我们税号是 {TAX_ID}"]) for c in customers[:4]]
                              + [(c, [QUESTION, f"税号 {TAX_ID}"]) for c in customers[4:]])
        assert health(stack) == 503
        full_disk.free()
        assert_nothing_lost(stack, customers, deliveries)
        assert health(stack) == 200
    finally:
        stop_stack(stack)
