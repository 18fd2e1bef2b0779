"""Who gets into the ops console: accounts, the login throttle, server-side sessions (logout that
really ends them, idle expiry), cookie flags, the `next=` check, CSRF and the security headers."""
from __future__ import annotations

import pytest

from bot.desk.console_auth import FAILURE_LIMIT, FAILURE_WINDOW_SECONDS, hash_password
from tests.console_cases import PASSWORD, console_app, login, logged_in, make_ticket
from tests.fakes import FakeClock


@pytest.fixture
def clock():
    """Fake time for the console's sessions and throttle."""
    return FakeClock()


@pytest.fixture
def app(tmp_path, clock):
    """The console app on the fake clock."""
    made = console_app(tmp_path)
    made.extensions["console_auth"].clock = clock
    return made


@pytest.fixture
def parts(app):
    return app.extensions["bot"]


@pytest.mark.parametrize("method, path", [
    ("GET", "/ops/"), ("GET", "/ops/tickets/1"), ("GET", "/ops/insight"), ("GET", "/ops/insight/explain?q=x"),
    ("POST", "/ops/tickets/1/resolve"), ("POST", "/ops/logout-everywhere"),
])
def test_console_pages_need_a_login(app, method, path):
    response = app.test_client().open(path, method=method)
    assert response.status_code in (302, 303) and "/ops/login" in response.headers["Location"]


@pytest.mark.parametrize("user, password, ok", [
    ("王", PASSWORD, True),  # [[ops.accounts]] with a werkzeug hash
    ("ops", PASSWORD, True),  # the single console_user / console_password keys still work
    ("王", "wrong password", False),
    ("nobody", PASSWORD, False),
    ("", "", False),
])
def test_accounts_from_the_config(app, user, password, ok):
    client = app.test_client()
    response = login(client, user, password)
    assert (response.status_code == 303) == ok
    assert (client.get("/ops/").status_code == 200) == ok
    if not ok:
        assert response.status_code == 401 and "用户名或密码错误" in response.get_data(as_text=True)


def test_a_stored_account_and_a_hashed_console_password_log_in(tmp_path):
    app = console_app(tmp_path, console_password=hash_password("hashed secret!"), accounts=())
    app.extensions["bot"].store.console.operators.put("li", hash_password("stored secret!"), 0.0)
    for user, password in (("li", "stored secret!"), ("ops", "hashed secret!")):
        assert login(app.test_client(), user, password).status_code == 303


def test_no_account_means_the_console_says_so(tmp_path):
    response = login(console_app(tmp_path, console_password="", accounts=()).test_client(), "ops", "x")
    assert response.status_code == 401 and "ops-user add" in response.get_data(as_text=True)


def wrong(client, user="王", address="10.0.0.1"):
    """One failed login from `address`; its response."""
    return login(client, user, "wrong", environ_overrides={"REMOTE_ADDR": address})


@pytest.mark.parametrize("attempts", [
    [("王", "10.0.0.1")] * FAILURE_LIMIT,  # one account from one address
    [("王", f"10.0.0.{i}") for i in range(FAILURE_LIMIT)],  # one account from many addresses
    [(f"user{i}", "10.0.0.1") for i in range(FAILURE_LIMIT)],  # many names from one address
])
def test_the_login_is_throttled_after_ten_failures(app, clock, attempts):
    """The next attempt — even with the right password — gets 429 with Retry-After until the window passes."""
    client = app.test_client()
    for user, address in attempts:
        assert wrong(client, user, address).status_code == 401
        clock.advance(1)
    user, address = attempts[-1]
    refused = login(client, "王" if user == "王" else user, PASSWORD, environ_overrides={"REMOTE_ADDR": address})
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= FAILURE_WINDOW_SECONDS
    clock.advance(FAILURE_WINDOW_SECONDS)
    assert login(client, "王", PASSWORD, environ_overrides={"REMOTE_ADDR": address}).status_code == 303


def test_a_good_login_resets_the_account_but_not_the_address(app, clock):
    client = app.test_client()
    for _ in range(FAILURE_LIMIT - 1):
        wrong(client)
    assert login(client, environ_overrides={"REMOTE_ADDR": "10.0.0.1"}).status_code == 303
    assert wrong(client, "王", "10.0.0.2").status_code == 401  # the account starts afresh
    assert wrong(client, "ops", "10.0.0.1").status_code == 401  # the address's tenth failure
    assert wrong(client, "ops", "10.0.0.1").status_code == 429


@pytest.mark.parametrize("method, path", [("GET", "/ops/"), ("POST", "/ops/tickets/1/resolve")])
def test_the_cookie_from_before_logout_is_refused(app, parts, method, path):
    ticket = make_ticket(parts)
    client, csrf = logged_in(app)
    old = client.get_cookie("ops_session").value
    client.post("/ops/logout", data={"csrf": csrf})
    client.set_cookie("ops_session", old)
    response = client.open(path.replace("1", str(ticket.id)), method=method, data={"csrf": csrf})
    assert response.status_code in (302, 303) and "/ops/login" in response.headers["Location"]
    assert parts.store.tickets.get(ticket.id).status == "open"


def test_log_out_everywhere_ends_the_other_devices(app):
    phone, csrf = logged_in(app)
    laptop, _ = logged_in(app)
    other, _ = logged_in(app, "ops")
    phone.post("/ops/logout-everywhere", data={"csrf": csrf})
    assert [c.get("/ops/").status_code for c in (phone, laptop, other)] == [302, 302, 200]


@pytest.mark.parametrize("idle_minutes, alive", [(479, True), (481, False)])
def test_an_idle_session_ends(app, clock, idle_minutes, alive):
    """The default idle limit is 480 minutes (one working day)."""
    client, _ = logged_in(app)
    clock.advance(idle_minutes * 60)
    assert (client.get("/ops/").status_code == 200) == alive


@pytest.mark.parametrize("public_url, name, secure", [
    ("http://127.0.0.1:8080", "ops_session", False),
    ("https://bot.example.com", "__Host-ops_session", True),
])
def test_the_cookie_is_httponly_and_secure_behind_https(tmp_path, public_url, name, secure):
    response = login(console_app(tmp_path, public_url).test_client())
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{name}=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert ("Secure" in cookie) == secure and "Path=/" in cookie


@pytest.mark.parametrize("target, lands", [
    ("/ops/tickets/7?done=x", "/ops/tickets/7?done=x"),
    ("/ops/insight", "/ops/insight"),
    ("https://evil.example/ops/", "/ops/"),
    ("//evil.example/ops/", "/ops/"),
    ("/ops//evil.example", "/ops/"),
    ("/ops/\r\nSet-Cookie: x=1", "/ops/"),
    ("/ops/%0d%0aSet-Cookie:x", "/ops/%0d%0aSet-Cookie:x"),  # still a plain path under /ops/
    ("/ops/../wechat", "/ops/"),
    ("/wechat", "/ops/"),
    ("javascript:alert(1)", "/ops/"),
])
def test_next_is_only_ever_a_path_under_ops(app, target, lands):
    response = app.test_client().post("/ops/login", query_string={"next": target},
                                      data={"user": "王", "password": PASSWORD})
    assert response.status_code == 303 and response.headers["Location"] == lands


@pytest.mark.parametrize("form", [{}, {"csrf": "forged"}])
def test_a_form_without_its_csrf_token_is_refused(app, parts, form):
    ticket = make_ticket(parts)
    client, _ = logged_in(app)
    assert client.post(f"/ops/tickets/{ticket.id}/resolve", data=form).status_code == 400
    assert parts.store.tickets.get(ticket.id).status == "open"


def test_console_pages_carry_the_security_headers(app):
    client, _ = logged_in(app)
    headers = client.get("/ops/").headers
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["Cache-Control"] == "no-store" and headers["X-Content-Type-Options"] == "nosniff"
