"""Shared fixtures: the shipped knowledge base and store URLs for every backend."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.fakes", "tests.store_cases"]  # fake-API fixtures; `store` over every backend

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
IN_CI = os.environ.get("CI", "").lower() == "true"


def require_service(env_name: str, what: str) -> str:
    """URL of an external test service; fail (never skip) under CI=true when it is absent."""
    url = os.environ.get(env_name, "")
    if not url:
        if IN_CI:
            pytest.fail(f"{env_name} is not set: {what} tests must run in CI")
        pytest.skip(f"{env_name} not set: {what} tests skipped outside CI")
    return url


@pytest.fixture(scope="session")
def kb():
    """The shipped answers/ with its matcher attached."""
    from bot.kb import load_kb
    from bot.understanding.matcher import attach_matcher

    return attach_matcher(load_kb(ROOT / "answers"))


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """PostgreSQL URL for tests (BOT_TEST_POSTGRES_URL)."""
    return require_service("BOT_TEST_POSTGRES_URL", "PostgreSQL")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Redis URL for tests (BOT_TEST_REDIS_URL)."""
    return require_service("BOT_TEST_REDIS_URL", "Redis")
