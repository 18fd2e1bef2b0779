"""The ops console: find a ticket (search, filters, pages), read it as a chat, reply, resolve or
reopen (with a confirm), keep internal notes — every action recorded with the operator's name."""
from __future__ import annotations

import logging
import time
from datetime import date
from urllib.parse import urlencode

from flask import Blueprint, abort, current_app, g, redirect, render_template, request, url_for

from bot.channels import ops_insight, ops_session
from bot.desk.console_auth import ConsoleAuth
from bot.localtime import day_start, local_text, zone
from bot.store.console import TicketQuery

log = logging.getLogger(__name__)

PAGE_SIZE = 20
MAX_TEXT_CHARS = 600  # reply and note length (a customer-service message stays well under 2 KB)
TRANSCRIPT_LINES = 30
NOTICES = {  # ?done=… after a POST → the line shown at the top of the page
    "resolved": "已标记完成，已通知客户", "reopened": "已重新打开", "replied": "回复已排队发送",
    "noted": "备注已保存", "empty": "内容为空，未发送",
}


def _parts():
    """The app's parts (set by create_app)."""
    return current_app.extensions["bot"]


def _tz():
    """The display time zone."""
    return zone(_parts().config.server.timezone)


def _day(text: str) -> float | None:
    """Start of a YYYY-MM-DD day in the display zone (None when empty or malformed)."""
    try:
        return day_start(date.fromisoformat(text), _tz()) if text else None
    except ValueError:
        return None


def list_query(args) -> tuple[TicketQuery, dict]:
    """The ticket list's query from the URL, and the filters to echo back into the form."""
    form = {name: args.get(name, "").strip()[:100] for name in ("q", "status", "kind", "intent", "from", "to")}
    page = max(1, args.get("page", 1, type=int) or 1)
    until = _day(form["to"])
    query = TicketQuery(text=form["q"], status=form["status"] or None, kind=form["kind"] or None,
                        intent=form["intent"] or None, since=_day(form["from"]),
                        until=until + 86400 if until is not None else None,
                        offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    return query, form | {"page": page}


def index():
    """Ticket list: open first, search, filters, pages."""
    query, form = list_query(request.args)
    found = _parts().store.console.tickets.search(query)
    pages = max(1, -(-found.total // PAGE_SIZE))
    filters = {k: v for k, v in form.items() if v and k != "page"}

    def page_url(n: int) -> str:
        """The list URL for page n with the same filters."""
        return url_for("ops.index") + "?" + urlencode(filters | {"page": n})
    faqs = sorted((i.id, i.title) for i in _parts().kb.intents.values() if i.kind == "faq")
    return render_template("ops_index.html", page=found, form=form, pages=pages, page_url=page_url,
                           intents=faqs, filtered=bool(filters))


def _ticket_or_404(ticket_id: int):
    """The ticket, or a 404 page."""
    found = _parts().store.tickets.get(ticket_id)
    if found is None:
        abort(404)
    return found


def conversation(transcript: list[dict], events: list[dict]) -> list[dict]:
    """Chat bubbles: the customer's and the bot's lines plus ops replies, in time order."""
    bubbles = [{"side": "customer" if m["direction"] == "in" else "bot", "who": "", "text": m["text"],
                "at": m["at"]} for m in transcript]
    bubbles += [{"side": "ops", "who": actor_name(e["actor"]), "text": e["detail"], "at": e["at"]}
                for e in events if e["kind"] == "replied"]
    return sorted(bubbles, key=lambda b: b["at"])


def attachment_views(found) -> list[dict]:
    """Each attachment with the URL of its kept copy (None: no stored copy yet, caption only)."""
    return [{"url": None, "media": media} for media in found.attachments]


def ticket(ticket_id: int):
    """One ticket: words, tax ID, flags, images, the conversation, notes and history."""
    store = _parts().store
    found = _ticket_or_404(ticket_id)
    events = store.tickets.events(ticket_id)
    intent = _parts().kb.intents.get(found.intent)
    return render_template(
        "ops_ticket.html", t=found, intent=intent, events=events, attachments=attachment_views(found),
        chat=conversation(store.turns.recent_messages(found.user, TRANSCRIPT_LINES), events),
        notes=[e for e in events if e["kind"] == "note"], notice=NOTICES.get(request.args.get("done", "")))


def _back(ticket_id: int, done: str):
    """Redirect (303) to the ticket page with a notice."""
    return redirect(url_for("ops.ticket", ticket_id=ticket_id, done=done), 303)


def _actor() -> str:
    """Who acts, for the ticket history: "console:<operator>"."""
    return f"console:{g.operator}"


def actor_name(actor: str) -> str:
    """An event's actor in words: the operator's name, "命令行 root", "企业微信 zhang" ("" stays "")."""
    where, _, name = actor.partition(":")
    if not name:
        return actor
    return {"console": name, "cli": f"命令行 {name}", "wecom": f"企业微信 {name}"}.get(where, actor)


def _text_field() -> str:
    """The posted text, trimmed to MAX_TEXT_CHARS."""
    return request.form.get("text", "").strip()[:MAX_TEXT_CHARS]


def resolve(ticket_id: int):
    """Mark done (after the confirm): the customer is told what to do next."""
    if _parts().desk.resolve(ticket_id, actor=_actor()) is None:
        abort(404)
    log.info("ops console: %s resolved ticket %s", g.operator, ticket_id)
    return _back(ticket_id, "resolved")


def reopen(ticket_id: int):
    """Open a resolved ticket again (after the confirm)."""
    if _parts().desk.reopen(ticket_id, actor=_actor()) is None:
        abort(404)
    log.info("ops console: %s reopened ticket %s", g.operator, ticket_id)
    return _back(ticket_id, "reopened")


def reply(ticket_id: int):
    """Send the customer a message from ops."""
    text = _text_field()
    if not text:
        return _back(ticket_id, "empty")
    if _parts().desk.reply(ticket_id, text, actor=_actor()) is None:
        abort(404)
    return _back(ticket_id, "replied")


def note(ticket_id: int):
    """An internal note on the ticket (never sent to the customer)."""
    text = _text_field()
    if not text:
        return _back(ticket_id, "empty")
    if _parts().desk.note(ticket_id, text, actor=_actor()) is None:
        abort(404)
    return _back(ticket_id, "noted")


ROUTES = (  # (rule, view, methods): explicit routing
    ("/login", ops_session.login, ["GET", "POST"]), ("/logout", ops_session.logout, ["POST"]),
    ("/logout-everywhere", ops_session.logout_everywhere, ["POST"]), ("/", index, ["GET"]),
    ("/tickets/<int:ticket_id>", ticket, ["GET"]), ("/tickets/<int:ticket_id>/resolve", resolve, ["POST"]),
    ("/tickets/<int:ticket_id>/reopen", reopen, ["POST"]), ("/tickets/<int:ticket_id>/reply", reply, ["POST"]),
    ("/tickets/<int:ticket_id>/note", note, ["POST"]), ("/insight", ops_insight.insight, ["GET"]),
    ("/insight/explain", ops_insight.explain, ["GET"]), ("/report", ops_insight.report, ["GET"]),
)


def ops_blueprint(app, clock=time.time) -> Blueprint:
    """Blueprint mounted at /ops: every view but login needs a live server-side session."""
    parts = app.extensions["bot"]
    app.extensions["console_auth"] = ConsoleAuth(parts.config.ops, parts.store.console, clock)
    bp = Blueprint("ops", __name__, template_folder="templates")
    bp.before_request(ops_session.load_session)
    bp.after_request(ops_session.add_headers)
    bp.add_app_template_filter(lambda at: local_text(at, _tz()), "when")
    bp.add_app_template_filter(actor_name, "who")
    bp.app_context_processor(lambda: {"operator": g.get("operator", ""), "csrf": g.get("csrf", "")})
    for rule, view, methods in ROUTES:
        bp.add_url_rule(rule, view.__name__, view, methods=methods)
    return bp
