"""The console's HTTP side of logging in: the session cookie, login/logout views, CSRF, the
`next=` check and the security headers. Accounts, throttle and sessions: bot/desk/console_auth.py."""
from __future__ import annotations

import hmac
import logging
import re

from flask import abort, current_app, g, redirect, render_template, request, url_for

from bot.desk.console_auth import ConsoleAuth

log = logging.getLogger(__name__)

COOKIE, SECURE_COOKIE = "ops_session", "__Host-ops_session"  # __Host-: Secure, Path=/, no Domain
PUBLIC_ENDPOINTS = {"ops.login"}
SAFE_NEXT = re.compile(r"/ops/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*")
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def auth() -> ConsoleAuth:
    """The app's ConsoleAuth (set by ops_blueprint)."""
    return current_app.extensions["console_auth"]


def secure() -> bool:
    """True behind https: the cookie is then Secure (and __Host- prefixed)."""
    return current_app.extensions["bot"].config.server.public_url.lower().startswith("https://")


def cookie_name() -> str:
    """The session cookie's name for this deployment."""
    return SECURE_COOKIE if secure() else COOKIE


def safe_next(target: str) -> str | None:
    """`target` when it is a plain path under /ops/ (no scheme, host, CR/LF or ..), else None."""
    target = target.rstrip("?")
    if not SAFE_NEXT.fullmatch(target) or ".." in target or target.startswith("/ops//"):
        return None
    return target


def load_session():
    """Before every console request: find the operator, or send them to the login page."""
    g.operator, g.csrf = "", ""
    if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint is None:
        return None
    found = auth().session(request.cookies.get(cookie_name(), ""))
    if found is None:
        if request.method != "GET":
            log.warning("ops console: %s %s without a live session", request.method, request.path)
        return redirect(url_for("ops.login", next=safe_next(request.full_path)),
                        302 if request.method == "GET" else 303)
    g.operator, g.csrf = found.operator, found.csrf
    if request.method == "POST":
        sent = request.form.get("csrf", "")
        if not sent or not hmac.compare_digest(sent, found.csrf):
            log.warning("ops console: CSRF token mismatch from %s", request.remote_addr)
            abort(400, "表单已过期，请刷新页面后重试")
    return None


def add_headers(response):
    """No caching, no framing, nothing loaded from elsewhere."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _set_cookie(response, token: str) -> None:
    """The session cookie: HttpOnly, SameSite=Lax, Secure behind https."""
    response.set_cookie(cookie_name(), token, httponly=True, samesite="Lax", secure=secure(), path="/")


def login():
    """The login form; 429 with Retry-After while throttled."""
    target = safe_next(request.args.get("next", "")) or url_for("ops.index")
    if request.method == "GET":
        return render_template("ops_login.html")
    result = auth().login(request.form.get("user", ""), request.form.get("password", ""),
                          request.remote_addr or "")
    if result.status == "ok":
        response = redirect(target, 303)
        _set_cookie(response, result.token)
        return response
    if result.status == "throttled":
        minutes = -(-result.retry_after // 60)
        page = render_template("ops_login.html", error=f"失败次数过多，请 {minutes} 分钟后再试")
        return page, 429, {"Retry-After": str(result.retry_after)}
    error = "控制台未配置账号（见 README：python -m bot ops-user add）" if result.status == "disabled" \
        else "用户名或密码错误"
    return render_template("ops_login.html", error=error), 401


def logout():
    """End this browser's session (the old cookie stops working at once)."""
    auth().logout(request.cookies.get(cookie_name(), ""))
    response = redirect(url_for("ops.login"), 303)
    response.delete_cookie(cookie_name(), path="/", secure=secure(), httponly=True, samesite="Lax")
    return response


def logout_everywhere():
    """End every session of this operator, on every device."""
    auth().logout_everywhere(g.operator)
    return logout()
