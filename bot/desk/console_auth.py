"""Who may use the ops console: accounts (config and store), password checks, the login throttle
and server-side sessions. No Flask here: bot/channels/ops_session.py is the HTTP side."""
from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import math
import secrets
from dataclasses import dataclass
from typing import Callable

from werkzeug.security import check_password_hash, generate_password_hash

from bot.config import OpsConfig
from bot.store.console import ConsoleSession, ConsoleStore

log = logging.getLogger(__name__)

FAILURE_LIMIT = 10  # failed logins per account and per address (issue 10) …
FAILURE_WINDOW_SECONDS = 600  # … within 10 minutes; the next attempt gets HTTP 429
MAX_NAME_CHARS = 64
HASH_METHODS = ("scrypt:", "pbkdf2:")  # werkzeug.security formats accepted in config


def hash_password(password: str) -> str:
    """A werkzeug.security hash (scrypt) of the password."""
    return generate_password_hash(password)


def looks_hashed(value: str) -> bool:
    """True when a configured password is already a werkzeug hash."""
    return value.startswith(HASH_METHODS) and value.count("$") == 2


@functools.cache
def _dummy_hash() -> str:
    """A hash to check against for unknown names, so they take as long as known ones."""
    return hash_password(secrets.token_hex(16))


def token_hash(token: str) -> str:
    """What the store keeps of a session cookie (the cookie itself is never stored)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class LoginResult:
    """Outcome of one login attempt."""

    status: str  # ok | bad | throttled | disabled
    operator: str = ""
    token: str = ""  # the new session's cookie value (status ok)
    retry_after: int = 0  # seconds until another attempt is allowed (status throttled)


class ConsoleAuth:
    """Accounts, throttle and sessions over the console store."""

    def __init__(self, ops: OpsConfig, store: ConsoleStore, clock: Callable[[], float]):
        """Accounts from the config (`accounts`, `console_user`/`console_password`) plus the store's."""
        self.ops, self.store, self.clock = ops, store, clock
        self.idle_seconds = ops.session_idle_minutes * 60
        self.max_age = ops.session_max_days * 86400

    def configured(self) -> dict[str, str]:
        """Name -> password hash (or the legacy plaintext console_password) from the config."""
        found = {a.name: a.password_hash for a in self.ops.accounts}
        if self.ops.console_password and self.ops.console_user not in found:
            found[self.ops.console_user] = self.ops.console_password
        return found

    def enabled(self) -> bool:
        """True when at least one account can log in."""
        return bool(self.configured()) or bool(self.store.operators.list())

    def password_ok(self, name: str, password: str) -> bool:
        """Check the password; unknown names cost the same time as known ones."""
        secret = self.configured().get(name)
        if secret is None:
            stored = self.store.operators.get(name)
            secret = stored.password_hash if stored else None
        if secret is None:
            check_password_hash(_dummy_hash(), password)
            return False
        if looks_hashed(secret):
            return check_password_hash(secret, password)
        return hmac.compare_digest(password.encode(), secret.encode())

    @staticmethod
    def scopes(name: str, address: str) -> tuple[str, str]:
        """The throttle's counters for one attempt: the account's and the address's."""
        return f"account:{name.casefold()}", f"address:{address}"

    def retry_after(self, scopes: tuple[str, ...], now: float) -> int:
        """Seconds until a throttled scope may try again; 0 when none is throttled."""
        found = self.store.throttle.failures(scopes, now - FAILURE_WINDOW_SECONDS)
        waits = [times[-FAILURE_LIMIT] + FAILURE_WINDOW_SECONDS - now
                 for times in found.values() if len(times) >= FAILURE_LIMIT]
        return max(1, math.ceil(max(waits))) if waits else 0

    def login(self, name: str, password: str, address: str) -> LoginResult:
        """Throttle, check, and open a server-side session on success."""
        name, now = name.strip()[:MAX_NAME_CHARS], self.clock()
        scopes = self.scopes(name, address)
        wait = self.retry_after(scopes, now)
        if wait:
            log.warning("ops console: login throttled for %r from %s (%d s)", name, address, wait)
            return LoginResult("throttled", retry_after=wait)
        if not self.enabled():
            return LoginResult("disabled")
        if not name or not self.password_ok(name, password):
            log.warning("ops console: failed login for %r from %s", name, address)
            self.store.throttle.record(scopes, now, now - FAILURE_WINDOW_SECONDS)
            return LoginResult("bad")
        self.store.throttle.clear(scopes[:1])  # the address keeps its count
        token = secrets.token_urlsafe(32)
        self.store.sessions.open(token_hash(token), name, secrets.token_urlsafe(24), now)
        log.info("ops console: %s logged in from %s", name, address)
        return LoginResult("ok", operator=name, token=token)

    def session(self, token: str) -> ConsoleSession | None:
        """The live session of a cookie value, or None (unknown, logged out, idle or too old)."""
        if not token:
            return None
        return self.store.sessions.get(token_hash(token), self.clock(), self.idle_seconds, self.max_age)

    def logout(self, token: str) -> None:
        """End this browser's session."""
        self.store.sessions.close(token_hash(token))

    def logout_everywhere(self, operator: str) -> int:
        """End every session of the operator; how many."""
        ended = self.store.sessions.close_all(operator)
        log.info("ops console: %s logged out everywhere (%d sessions)", operator, ended)
        return ended
