"""The ops console's pages: the ticket list (search, filters, pages), the ticket as a chat, reply,
resolve and reopen recorded with the operator, internal notes, escaping; and the public pages."""
from __future__ import annotations

import re
import time
from dataclasses import replace

import pytest

from bot.app import create_app

from bot.channels.ops import PAGE_SIZE, actor_name
from bot.localtime import local_day, zone
from bot.model import Inbound
from tests.console_cases import BAD_CHECK_DIGIT, TAX_ID, console_app, logged_in, make_ticket

FLAGGED = (BAD_CHECK_DIGIT, BAD_CHECK_DIGIT)  # sent twice: accepted, flagged 校验位未通过


@pytest.fixture
def app(tmp_path):
    return console_app(tmp_path)


@pytest.fixture
def parts(app):
    return app.extensions["bot"]


def card_numbers(body: str) -> list[str]:
    """Ticket numbers on the list page, in order."""
    return re.findall(r'<strong class="number">(T\d+)</strong>', body)


def customer_rows(parts) -> list[str]:
    """Texts queued for customers."""
    return [r.payload["text"] for r in parts.store.outbox.claim(10**10, limit=50, target="customer")]


def test_the_list_shows_open_tickets_first_with_tax_id_flag_and_zone(app, parts):
    first = make_ticket(parts, user="o-a")
    flagged = make_ticket(parts, user="o-b", tax_ids=FLAGGED)
    parts.desk.resolve(first.id)
    client, _ = logged_in(app)
    body = client.get("/ops/").get_data(as_text=True)
    numbers = card_numbers(body)
    assert numbers[-1] == first.number and flagged.number in numbers
    assert '<meta name="viewport"' in body and 'type="search"' in body
    assert "校验位未通过" in body and TAX_ID in body and "UTC+8" in body


@pytest.mark.parametrize("query, expected", [
    ("q=551385082", ["a", "b"]), (f"q={TAX_ID.lower()}", ["a"]), (f"q={BAD_CHECK_DIGIT}", ["b"]), ("q=T000001", ["a"]),
    ("q=没有找到", []), ("status=resolved", ["a"]), ("status=open", ["b"]), ("kind=human", []),
    ("from=TODAY&to=TODAY", ["a", "b"]), ("to=2000-01-01", []), ("from=2999-01-01", []),
    ("from=garbage", ["b", "a"]),
])
def test_search_and_filters(app, parts, query, expected):
    tickets = {"a": make_ticket(parts, user="o-a"), "b": make_ticket(parts, user="o-b", tax_ids=FLAGGED)}
    parts.desk.resolve(tickets["a"].id)
    client, _ = logged_in(app)
    today = local_day(time.time(), zone("Asia/Shanghai")).isoformat()
    numbers = card_numbers(client.get(f"/ops/?{query.replace('TODAY', today)}").get_data(as_text=True))
    assert sorted(numbers) == sorted(tickets[k].number for k in expected)


def test_pages(app, parts):
    for i in range(PAGE_SIZE + 3):
        parts.service.handle(Inbound(user=f"o-{i}", kind="text", text="转人工", msg_id=f"m{i}", created_at=1.0))
    client, _ = logged_in(app)
    first = client.get("/ops/").get_data(as_text=True)
    second = client.get("/ops/?page=2").get_data(as_text=True)
    assert len(card_numbers(first)) == PAGE_SIZE and len(card_numbers(second)) == 3
    assert "第 1 / 2 页" in first and 'rel="next"' in first and 'rel="prev"' in second
    assert not set(card_numbers(first)) & set(card_numbers(second))


def test_the_ticket_reads_as_a_chat_with_a_copy_button(app, parts):
    ticket = make_ticket(parts)
    client, _ = logged_in(app)
    body = client.get(f"/ops/tickets/{ticket.id}").get_data(as_text=True)
    assert f'data-copy="{TAX_ID}"' in body
    assert body.count('class="bubble customer"') >= 2 and 'class="bubble bot"' in body
    assert "标记完成" in body and 'class="confirm"' in body  # resolve sits behind a confirm


def form_token(body: str, action: str) -> str:
    """The CSRF token inside the form that posts to `action`."""
    form = re.search(rf'<form[^>]*action="[^"]*/{action}"[^>]*>(.*?)</form>', body, re.S).group(1)
    return re.search(r'name="csrf" value="([^"]+)"', form).group(1)


def test_reply_resolve_reopen_and_note_are_recorded_with_the_operator(app, parts):
    ticket = make_ticket(parts)
    client, _ = logged_in(app)
    page = f"/ops/tickets/{ticket.id}"
    for action, form in (("reply", {"text": "已经改好了"}), ("note", {"text": "财务说明天再试"}),
                         ("resolve", {}), ("reopen", {})):
        token = form_token(client.get(page).get_data(as_text=True), action)  # each form carries its token
        response = client.post(f"{page}/{action}", data={"csrf": token, **form})
        assert response.status_code == 303 and "done=" in response.headers["Location"]
    body = client.get(page).get_data(as_text=True)
    history = re.search(r'<ol class="history">(.*?)</ol>', body, re.S).group(1)
    for words in ("王 回复客户：已经改好了", "王 备注：财务说明天再试", "王 标记完成", "王 重新打开"):
        assert words in history
    assert 'class="bubble ops"' in body and parts.store.tickets.get(ticket.id).status == "open"
    sent = customer_rows(parts)
    assert len(sent) == 2 and "已经改好了" in sent[0] and "更新配置" in sent[1]  # the note is not sent
    assert not any("财务说明天再试" in text for text in sent)


@pytest.mark.parametrize("action", ["reply", "note"])
def test_an_empty_text_sends_nothing(app, parts, action):
    ticket = make_ticket(parts)
    client, csrf = logged_in(app)
    response = client.post(f"/ops/tickets/{ticket.id}/{action}", data={"csrf": csrf, "text": "  "},
                           follow_redirects=True)
    assert "内容为空" in response.get_data(as_text=True) and customer_rows(parts) == []


@pytest.mark.parametrize("method, path", [
    ("GET", "/ops/tickets/999"), ("POST", "/ops/tickets/999/resolve"), ("POST", "/ops/tickets/999/reopen"),
    ("POST", "/ops/tickets/999/reply"),
])
def test_an_unknown_ticket_is_404(app, method, path):
    client, csrf = logged_in(app)
    assert client.open(path, method=method, data={"csrf": csrf, "text": "x"}).status_code == 404


def test_customer_markup_is_shown_as_text(app, parts):
    ticket = make_ticket(parts, "数电配置没有乐企通道<script>alert(1)</script><img src=x onerror=alert(2)>")
    client, _ = logged_in(app)
    for path in ("/ops/", f"/ops/tickets/{ticket.id}"):
        body = client.get(path).get_data(as_text=True)
        assert "<script>alert" not in body and "<img src=x" not in body and "&lt;script&gt;" in body


def test_an_attachment_without_a_stored_copy_says_so(app, parts):
    ticket = make_ticket(parts)
    parts.service.handle(Inbound(user="o-cust", kind="image", media_id="MEDIA1",
                                 pic_url="https://mmbiz.example/p.png", msg_id="img1", created_at=3.0))
    client, _ = logged_in(app)
    body = client.get(f"/ops/tickets/{ticket.id}").get_data(as_text=True)
    assert "尚未保存副本" in body and 'src="https://mmbiz' not in body


def test_the_old_report_url_goes_to_the_insight_page(app):
    client, _ = logged_in(app)
    response = client.get("/ops/report")
    assert response.status_code == 301 and response.headers["Location"].endswith("/ops/insight")


def test_no_ops_section_means_no_console(tmp_path):
    app = console_app(tmp_path)
    assert create_app(replace(app.extensions["bot"].config, ops=None)).test_client().get("/ops/").status_code == 404


def test_health_and_metrics(app, parts):
    make_ticket(parts)
    client = app.test_client()
    assert client.get("/healthz").json["status"] == "ok"
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'bot_tickets{status="open"} 1.0' in metrics
    assert 'bot_outbox{status="pending",target="ops"} 1.0' in metrics


@pytest.mark.parametrize("actor, words", [
    ("console:王", "王"), ("cli:root", "命令行 root"), ("wecom:zhangsan", "企业微信 zhangsan"), ("", ""),
    ("bot", "机器人"), ("ops", "运营"), ("robot", "robot"), ("other:x", "other:x"),
])
def test_who_did_it_reads_as_a_name(actor, words):
    assert actor_name(actor) == words
