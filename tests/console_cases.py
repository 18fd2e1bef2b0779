"""Helpers for the console tests: an app over a SQLite file, logging in, CSRF tokens, tickets made
through the real dialogue."""
from __future__ import annotations

import re
from dataclasses import replace

from bot.app import create_app
from bot.config import OpsAccount, OpsConfig, ServerConfig, StorageConfig, WeChatConfig, load_config
from bot.desk.console_auth import hash_password
from bot.model import Inbound

PASSWORD = "correct horse battery"
TAX_ID = "91110108551385082Q"
QUESTION = "数电配置里找不到乐企联用通道"
ACCOUNTS = (OpsAccount("王", hash_password(PASSWORD)),)


def console_app(tmp_path, public_url: str = "http://127.0.0.1:8080", **ops):
    """The app over a SQLite file with the console enabled (account 王 and the legacy `ops`)."""
    settings = {"console_password": PASSWORD, "accounts": ACCOUNTS} | ops
    config = replace(load_config(None), wechat=WeChatConfig(token="tok", app_id="wx1", app_secret="s3cret"),
                     storage=StorageConfig(url=f"sqlite:///{tmp_path}/bot.db"),
                     server=ServerConfig(public_url=public_url), ops=OpsConfig(**settings))
    return create_app(config)


def csrf_of(page: bytes | str) -> str:
    """The CSRF token embedded in a console page."""
    text = page.decode() if isinstance(page, bytes) else page
    return re.search(r'name="csrf" value="([^"]+)"', text).group(1)


def login(client, user: str = "王", password: str = PASSWORD, **kwargs):
    """Post the login form (not following the redirect)."""
    return client.post("/ops/login", data={"user": user, "password": password}, **kwargs)


def logged_in(app, user: str = "王"):
    """A test client with a live console session, and its CSRF token."""
    client = app.test_client()
    assert login(client, user).status_code == 303
    return client, csrf_of(client.get("/ops/").data)


BAD_CHECK_DIGIT = "91110108551385082X"


def make_ticket(parts, words: str = QUESTION, user: str = "o-cust", tax_ids: tuple[str, ...] = (TAX_ID,)):
    """A channel ticket through the real dialogue: the question, then each tax ID sent in turn
    (BAD_CHECK_DIGIT twice gives a ticket flagged 校验位未通过)."""
    for n, text in enumerate((words, *tax_ids)):
        parts.service.handle(Inbound(user=user, kind="text", text=text, msg_id=f"{user}-{n}", created_at=1.0 + n))
    return parts.store.tickets.list(user=user)[0]
