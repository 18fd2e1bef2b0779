"""The ops console and public pages: login, one-click resolve, replies, escaping, health, metrics."""
from __future__ import annotations

import re
from dataclasses import replace

import pytest

from bot.app import create_app
from bot.config import OpsConfig, StorageConfig, WeChatConfig, load_config
from bot.model import Inbound

PASSWORD = "correct horse"
TAX_ID = "91110108551385082Q"


@pytest.fixture
def app(tmp_path):
    """The app over a SQLite file with the console enabled."""
    config = replace(load_config(None), wechat=WeChatConfig(token="tok", app_id="wx1", app_secret="s3cret"),
                     storage=StorageConfig(url=f"sqlite:///{tmp_path}/bot.db"),
                     ops=OpsConfig(console_password=PASSWORD))
    return create_app(config)


@pytest.fixture
def parts(app):
    return app.extensions["bot"]


def csrf(page: bytes) -> str:
    """The CSRF token embedded in a console page."""
    return re.search(rb'name="csrf" value="([^"]+)"', page).group(1).decode()


def login(client, password: str = PASSWORD):
    """Log in through the form; returns the response."""
    return client.post("/ops/login", data={"user": "ops", "password": password}, follow_redirects=True)


def make_ticket(parts, words: str = "数电配置里找不到乐企联用通道"):
    """A channel ticket through the real dialogue."""
    service = parts.service
    service.handle(Inbound(user="o-cust", kind="text", text=words, msg_id="1", created_at=1.0))
    service.handle(Inbound(user="o-cust", kind="text", text=TAX_ID, msg_id="2", created_at=2.0))
    return parts.store.list_tickets()[0]


@pytest.mark.parametrize("path", ["/ops/", "/ops/tickets/1", "/ops/report"])
def test_console_pages_need_a_login(app, path):
    response = app.test_client().get(path)
    assert response.status_code == 302 and "/ops/login" in response.headers["Location"]


def test_wrong_password_is_refused(app):
    client = app.test_client()
    page = login(client, "wrong")
    assert "用户名或密码错误" in page.get_data(as_text=True)
    assert client.get("/ops/").status_code == 302


def test_ops_see_the_ticket_and_resolve_it_in_one_click(app, parts):
    ticket = make_ticket(parts)
    client = app.test_client()
    page = login(client)
    assert ticket.number in page.get_data(as_text=True) and TAX_ID in page.get_data(as_text=True)
    response = client.post(f"/ops/tickets/{ticket.id}/resolve", data={"csrf": csrf(page.data)},
                           follow_redirects=True)
    said = parts.kb.render("desk-status", action="resolve", outcome="queued", ticket=ticket.number)
    assert said in response.get_data(as_text=True)
    assert parts.store.get_ticket(ticket.id).status == "resolved"
    rows = parts.store.claim_outbox(10**10, limit=10, target="customer")
    assert len(rows) == 1 and "更新配置" in rows[0].payload["text"]


def test_a_post_without_the_csrf_token_is_rejected(app, parts):
    ticket = make_ticket(parts)
    client = app.test_client()
    login(client)
    assert client.post(f"/ops/tickets/{ticket.id}/resolve", data={}).status_code == 400
    assert parts.store.get_ticket(ticket.id).status == "open"


def test_ops_reply_is_queued_for_the_customer(app, parts):
    ticket = make_ticket(parts)
    client = app.test_client()
    page = login(client)
    client.post(f"/ops/tickets/{ticket.id}/reply", data={"csrf": csrf(page.data), "text": "已经改好了"})
    rows = parts.store.claim_outbox(10**10, limit=10, target="customer")
    assert [r.payload["text"] for r in rows] == ["【人工客服】已经改好了"]


def test_customer_text_is_escaped_in_the_console(app, parts):
    ticket = make_ticket(parts, "数电配置没有乐企通道<script>alert(1)</script>")
    client = app.test_client()
    login(client)
    body = client.get(f"/ops/tickets/{ticket.id}").get_data(as_text=True)
    assert "<script>alert(1)" not in body and "&lt;script&gt;" in body


def test_answer_page_shows_steps_and_screenshots(app):
    response = app.test_client().get("/answers/leqi-channel-missing")
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "通道类型" in body and "<img" in body
    assert app.test_client().get("/answers/greeting").status_code == 404
    assert app.test_client().get("/answers/%3Cscript%3E").status_code == 404


def test_health_and_metrics(app, parts):
    make_ticket(parts)
    client = app.test_client()
    assert client.get("/healthz").json["status"] == "ok"
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'bot_tickets{status="open"} 1.0' in metrics
    assert 'bot_outbox{status="pending",target="ops"} 1.0' in metrics


def test_no_ops_section_means_no_console(tmp_path):
    config = replace(load_config(None), wechat=WeChatConfig(token="tok"),
                     storage=StorageConfig(url=f"sqlite:///{tmp_path}/bot.db"))
    assert create_app(config).test_client().get("/ops/").status_code == 404
