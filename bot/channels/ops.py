"""The ops console: log in, see tickets with the customer's words, resolve or reply in one click."""
from __future__ import annotations

import functools
import hmac
import logging
import secrets

from flask import (Blueprint, Response, abort, current_app, flash, redirect, render_template, request,
                   session, url_for)

from bot.tickets import format_time

log = logging.getLogger(__name__)


def _csrf_token() -> str:
    """The session's CSRF token, created on first use."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def _check_csrf() -> None:
    """Reject a POST whose form token does not match the session's."""
    sent = request.form.get("csrf", "")
    if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
        log.warning("ops console: CSRF token mismatch from %s", request.remote_addr)
        abort(400, "表单已过期，请刷新页面后重试")


def login_required(view):
    """Redirect to the login page unless an ops user is logged in."""
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        """The view, behind the login (and CSRF for POST) checks."""
        if not session.get("ops_user"):
            return redirect(url_for("ops.login", next=request.path))
        if request.method == "POST":
            _check_csrf()
        return view(*args, **kwargs)
    return wrapped


def _credentials_ok(cfg, user: str, password: str) -> bool:
    """Constant-time comparison against the configured console credentials."""
    if not cfg.console_password:
        return False
    same_user = hmac.compare_digest(user.encode(), cfg.console_user.encode())
    return hmac.compare_digest(password.encode(), cfg.console_password.encode()) and same_user


def _ticket_label(ticket) -> str:
    """What kind of ticket this is, from its FAQ (handoff.label or title)."""
    intent = _parts().kb.intents.get(ticket.intent)
    return intent.label if intent else ticket.intent


def _parts():
    """The app's parts (set by create_app)."""
    return current_app.extensions["bot"]


def login():
    """Console login form."""
    cfg = _parts().config.ops
    if request.method == "POST":
        if _credentials_ok(cfg, request.form.get("user", ""), request.form.get("password", "")):
            session.clear()
            session["ops_user"] = cfg.console_user
            target = request.args.get("next", "")
            return redirect(target if target.startswith("/ops/") else url_for("ops.index"))
        log.warning("ops console: failed login from %s", request.remote_addr)
        flash("用户名或密码错误" if cfg.console_password else "控制台未配置密码（[ops] console_password）")
    return render_template("ops_login.html")


@login_required
def logout():
    """End the console session."""
    session.clear()
    return redirect(url_for("ops.login"))


@login_required
def index():
    """Ticket list, open first."""
    status = request.args.get("status") or None
    tickets = _parts().store.list_tickets(status=status)
    tickets.sort(key=lambda t: (t.status == "resolved", -t.id))
    return render_template("ops_index.html", tickets=tickets, status=status)


@login_required
def ticket(ticket_id: int):
    """One ticket: words, tax ID, flags, history, transcript, attachments."""
    store = _parts().store
    found = store.get_ticket(ticket_id)
    if found is None:
        abort(404)
    return render_template("ops_ticket.html", t=found, events=store.ticket_events(ticket_id),
                           transcript=store.recent_messages(found.user, 20),
                           messages=store.ticket_messages(ticket_id),
                           attachments=store.ticket_attachments(ticket_id), delivery=_parts().desk.delivery_label)


@login_required
def resolve(ticket_id: int):
    """Mark done: the customer is told what to do next; the flash says exactly what happened."""
    outcome = _parts().desk.resolve(ticket_id, by=f"console:{session['ops_user']}")
    if outcome.ticket is None:
        abort(404)
    log.info("ops console: %s resolved ticket %s (%s)", session["ops_user"], ticket_id, outcome.outcome)
    flash(outcome.line)
    return redirect(url_for("ops.ticket", ticket_id=ticket_id))


@login_required
def reply(ticket_id: int):
    """Send the customer a message from ops (recorded with who sent it)."""
    outcome = _parts().desk.reply(ticket_id, request.form.get("text", ""), by=f"console:{session['ops_user']}")
    if outcome.ticket is None:
        abort(404)
    flash(outcome.line)
    return redirect(url_for("ops.ticket", ticket_id=ticket_id))


@login_required
def attachment(attachment_id: int):
    """An image a customer sent, as kept in the store (fetched with the media API if need be)."""
    found = _parts().desk.attachment(attachment_id)
    if found is None:
        media = _parts().store.attachment_file(attachment_id)
        if media is not None and media.pic_url.startswith(("http://", "https://")):
            return redirect(media.pic_url)  # not downloaded (yet): WeChat's PicUrl, while it lasts
        abort(404)
    content_type, data = found
    headers = {"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"}
    return Response(data, content_type=content_type, headers=headers)


@login_required
def report():
    """What customers asked that nothing answered, and hits per intent."""
    return render_template("ops_report.html", report=_parts().store.report())


ROUTES = (  # (rule, view, methods): explicit routing
    ("/login", login, ["GET", "POST"]), ("/logout", logout, ["POST"]), ("/", index, ["GET"]),
    ("/tickets/<int:ticket_id>", ticket, ["GET"]), ("/tickets/<int:ticket_id>/resolve", resolve, ["POST"]),
    ("/tickets/<int:ticket_id>/reply", reply, ["POST"]), ("/report", report, ["GET"]),
    ("/attachments/<int:attachment_id>", attachment, ["GET"]),
)


def ops_blueprint() -> Blueprint:
    """Blueprint mounted at /ops."""
    bp = Blueprint("ops", __name__, template_folder="templates")
    bp.add_app_template_filter(format_time, "when")
    bp.app_context_processor(lambda: {"csrf_token": _csrf_token, "ticket_label": _ticket_label})
    for rule, view, methods in ROUTES:
        bp.add_url_rule(rule, view.__name__, view, methods=methods)
    return bp
