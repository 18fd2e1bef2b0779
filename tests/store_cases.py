"""Stores for tests: the `store` fixture (a SQLite file; every backend with @all_backends()) and
the helpers that fill it. tests/conftest.py registers this module as a plugin.
"""
from __future__ import annotations

import uuid

import pytest
import redis
from sqlalchemy import create_engine, text

from bot.model import Session, Ticket
from bot.store.base import TurnRecord
from bot.store.redis_state import redis_store
from bot.store.sql import Db, sql_store

BACKENDS = ["sqlite", "memory", "postgres", "redis"]
SHARED = ["sqlite", "postgres", "redis"]  # state other processes can reach
T0 = 1_700_000_000.0
OPS = {"target": "ops", "payload": {"markdown": "**新工单**"}}


def open_backend(spec: dict):
    """A store from a picklable description (used by test processes too)."""
    db = Db(spec["url"])
    return redis_store(spec["redis_url"], db, spec["prefix"]) if spec.get("redis_url") else sql_store(db)


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
    """The backend description for the `spec` parameter (a SQLite file when not parametrized)."""
    kind = getattr(request, "param", "sqlite")
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
    return store.outbox.claim(T0 + 10**6, limit=1000, target=target, ops_per_minute=10**6)


def queue(store, target: str, count: int, now=T0, user="u1") -> list[int]:
    """Queue `count` rows for `target`; their ids."""
    payload = {"markdown": "m"} if target == "ops" else {"text": "t"}
    return [store.outbox.queue({"target": target, "user": user, "payload": payload}, None, now)
            for _ in range(count)]


def take_turn(store, key: str, user: str = "u1", now: float = T0, work=None, stamp=None,
              **record) -> tuple[str, str | None]:
    """One message through the store: ("new", the committed reply) or (status, the stored reply).

    `work(tx)` runs inside the message's transaction (default: it returns TurnRecord(**record));
    `stamp` is the delivery's bot.model.Stamp.
    """
    with store.turns.turn(key, user, now, stamp=stamp) as turn:
        if turn.status != "new":
            return turn.status, turn.reply
        return "new", turn.commit(work or (lambda tx: TurnRecord(**record)))


def state_of(store, user: str = "u1") -> tuple[Session, bool]:
    """The user's conversation state (with the remembered tax ID) and held flag, as a turn reads them."""
    with store.turns.turn("", user, T0) as turn:
        return turn.session, turn.held
