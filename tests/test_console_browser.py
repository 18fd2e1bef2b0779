"""The ops console in a real browser (Debian chromium + Playwright) at 390×844 and 1280×800, against
`python -m bot serve` with FakeWeChat and FakeRobot: a handoff from a webhook message to the
customer's follow-up, the page never wider than the screen, and the console's defences.

The login-throttle test runs last: it leaves 127.0.0.1 throttled for ten minutes.
"""
from __future__ import annotations

import secrets
import sqlite3
import time
from types import SimpleNamespace

import pytest
from playwright.sync_api import expect

from tests.browser_cases import (CHROMIUM, CHROMIUM_ARGS, PASSWORD, VIEWPORTS, account_lines, log_in,
                                 no_sideways_scroll, png, require_chromium, shoot, wait_for)
from tests.e2e_helpers import Account, free_port, start_bot, write_config
from tests.fakes import FakeRobot, FakeWeChat

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.timeout(180)]

TAX_ID = "91110108551385082Q"
QUESTION = "数电配置里没有乐企联用通道<script>alert(1)</script>"
STEP_3 = "更新配置"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The real server (2 workers, SQLite) with the test operator, FakeWeChat and FakeRobot."""
    require_chromium()
    folder = tmp_path_factory.mktemp("browser")
    account = Account(app_id=f"wx{secrets.token_hex(8)}")
    wechat, robot = FakeWeChat(app_id=account.app_id, secret=secrets.token_hex(16)), FakeRobot()
    port = free_port()
    backend = SimpleNamespace(storage_url=f"sqlite:///{folder}/bot.db", redis_url="")
    config = write_config(folder, port, account, backend, wechat, robot)
    config.write_text(config.read_text(encoding="utf-8") + account_lines(), encoding="utf-8")
    server = start_bot(config, port, workers=2)
    try:
        server.wait_ready()
        yield SimpleNamespace(server=server, url=server.url, account=account, wechat=wechat, tag=port,
                              db=folder / "bot.db")
    finally:
        server.stop()
        wechat.close()
        robot.close()


@pytest.fixture(scope="module")
def browser(stack):
    """Debian's chromium, headless, no network beyond loopback."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(params=list(VIEWPORTS))
def page(request, browser):
    """A fresh page (own cookies) at the viewport; any JavaScript dialog fails the test."""
    context = browser.new_context(viewport=VIEWPORTS[request.param], locale="zh-CN")
    opened = context.new_page()
    opened.set_default_timeout(15_000)  # generous: the 2-core machine may be busy
    dialogs = []
    opened.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    opened.viewport_name = request.param
    yield opened
    context.close()
    assert dialogs == [], f"a script ran in the console: {dialogs}"


def new_customer(stack, n: int):
    """A WeChat user whose messages WeChat delivers to the bot (safe mode)."""
    from tests.e2e_helpers import Customer

    ids = iter(range(int(f"{stack.tag}{n:03d}000000"), 10**19))
    return Customer(stack.url, stack.account, f"oBrowser{stack.tag}u{n:03d}", ids)


def image_message(customer) -> str:
    """A screenshot from the customer, as WeChat delivers it."""
    return (f"<xml><ToUserName><![CDATA[gh_7f083739789a]]></ToUserName>"
            f"<FromUserName><![CDATA[{customer.user}]]></FromUserName><CreateTime>{int(time.time())}</CreateTime>"
            f"<MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://127.0.0.1:9/expired.png]]></PicUrl>"
            f"<MediaId><![CDATA[media_{customer.user}]]></MediaId><MsgId>{next(customer.msg_ids)}</MsgId></xml>")


def open_ticket(stack, n: int):
    """A customer asks, gives the tax ID and sends a screenshot: a ticket made by webhook messages
    (the picture is at WeChat's media API, its PicUrl already expired)."""
    customer = new_customer(stack, n)
    stack.wechat.media[f"media_{customer.user}"] = ("image/png", png())
    assert "税号" in customer.say(QUESTION)
    customer.say(f"我们税号是 {TAX_ID}，麻烦了")
    customer.post(image_message(customer))
    stack.wechat.user_message(customer.user)  # the 48 h window WeChat opened on their messages
    return customer


def outbox_rows(stack, user: str) -> list[tuple]:
    """(target, status, attempts, last error) of the user's outbox rows, for failure messages."""
    with sqlite3.connect(stack.db) as conn:
        query = 'SELECT target, status, attempts, last_error FROM outbox WHERE "user" = ? ORDER BY id'
        return conn.execute(query, (user,)).fetchall()


def test_a_handoff_end_to_end(stack, page, tmp_path, kb):
    """Log in, find the ticket by its tax ID, read it, reply, resolve (confirm): WeChat gets both."""
    size = page.viewport_name
    customer = open_ticket(stack, 1 if size == "phone" else 2)
    assert log_in(page, stack.url).status == 303
    page.wait_for_url("**/ops/")
    page.fill("input[type=search]", TAX_ID)
    page.click("form.search button.primary")
    page.wait_for_url(f"**/ops/?q={TAX_ID}*")
    cards = page.locator(".ticket-card")
    expect(cards.first).to_contain_text(TAX_ID)
    shoot(page, tmp_path, f"list-{size}")
    assert no_sideways_scroll(page)
    cards.first.locator("a.cover").click()  # open first, newest first: this customer's ticket
    page.wait_for_url("**/ops/tickets/*")
    assert page.locator("ol.chat li.bubble").count() >= 4  # question, answer, tax ID, ticket reply …
    assert "<script>alert(1)</script>" in page.locator("p.bubble.customer").first.inner_text()
    image = page.locator(".shots figure.shot img")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.complete && img.naturalWidth") == 240  # the kept copy, served by us
    assert page.locator("button.copy").get_attribute("data-copy") == TAX_ID
    shoot(page, tmp_path, f"detail-{size}")
    assert no_sideways_scroll(page)
    page.fill("#reply-text", f"已为您切换通道 {size}")
    number = page.locator("h1.ticket-title").inner_text().split()[0]
    page.click("form.compose button.primary")
    expect(page.locator(".notice")).to_have_text(kb.render("desk-status", action="reply", outcome="queued",
                                                           ticket=number))
    page.click("details.confirm summary")
    page.click("details.confirm button.primary")  # the confirm step
    expect(page.locator(".notice")).to_have_text(kb.render("desk-status", action="resolve", outcome="queued",
                                                           ticket=number))
    expect(page.locator("ol.history")).to_contain_text("王 标记完成")
    shoot(page, tmp_path, f"done-{size}")
    sent = wait_for(lambda: [m for user, m in list(stack.wechat.messages) if user == customer.user][1:],
                    90, "the reply and the follow-up at WeChat", lambda: outbox_rows(stack, customer.user))
    texts = [m for user, m in stack.wechat.messages if user == customer.user]
    assert any(f"已为您切换通道 {size}" in t for t in texts) and any(STEP_3 in t for t in texts), sent
    assert no_sideways_scroll(page)


def test_the_insight_page_draws_its_charts(stack, page, tmp_path):
    open_ticket(stack, 3 if page.viewport_name == "phone" else 4)
    log_in(page, stack.url)
    page.wait_for_url("**/ops/")
    page.goto(f"{stack.url}/ops/insight")
    shoot(page, tmp_path, f"insight-{page.viewport_name}")
    charts = page.locator("svg.chart")
    assert charts.count() == 3
    for i in range(3):
        box = charts.nth(i).bounding_box()
        assert box["width"] > 200 and box["height"] > 50
    assert page.locator("svg.chart rect").count() > 0 and no_sideways_scroll(page)
    page.goto(f"{stack.url}/ops/login")
    shoot(page, tmp_path, f"login-{page.viewport_name}")
    assert no_sideways_scroll(page)


def test_the_cookie_from_before_logout_is_refused(stack, page):
    log_in(page, stack.url)
    page.wait_for_url("**/ops/")
    before = page.context.cookies()
    page.click("details.menu summary")
    page.click("text=退出 >> nth=0")
    page.wait_for_url("**/ops/login")
    page.context.add_cookies(before)
    page.goto(f"{stack.url}/ops/")
    assert page.url.startswith(f"{stack.url}/ops/login")
    posted = page.request.post(f"{stack.url}/ops/logout-everywhere", max_redirects=0)
    assert posted.status == 303 and "/ops/login" in posted.headers["location"]


def test_a_form_without_its_csrf_token_is_refused(stack, page):
    open_ticket(stack, 5 if page.viewport_name == "phone" else 6)
    log_in(page, stack.url)
    page.wait_for_url("**/ops/")
    page.locator("a.cover").first.click()
    page.wait_for_url("**/ops/tickets/*")
    ticket_url = page.url
    page.evaluate("document.querySelectorAll('input[name=csrf]').forEach(e => e.remove())")
    page.fill("#note-text", "无令牌的备注")
    with page.expect_response(lambda r: r.url.endswith("/note")) as answer:
        page.click("form.compose >> nth=1 >> button")
    assert answer.value.status == 400
    page.goto(ticket_url)
    expect(page.locator("ul.notes")).not_to_contain_text("无令牌的备注")


@pytest.mark.parametrize("page", ["phone"], indirect=True)  # once: the address stays throttled
def test_wrong_passwords_get_429_after_the_limit(stack, page):
    """Runs last in this module (see the module docstring)."""
    statuses = [log_in(page, stack.url, password=f"wrong {i}").status for i in range(10)]
    assert statuses == [401] * 10
    refused = log_in(page, stack.url, password=PASSWORD)
    assert refused.status == 429 and int(refused.headers["retry-after"]) > 0
    expect(page.locator(".error")).to_contain_text("失败次数过多")
