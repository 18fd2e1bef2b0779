"""The ops console: find a ticket (search, filters, pages), read it as a chat, reply, resolve or
reopen (with a confirm), keep internal notes — every action recorded with the operator's name."""
from __future__ import annotations

import logging
import time
from datetime import date
from urllib.parse import urlencode

from flask import Blueprint, Response, abort, current_app, g, redirect, render_template, request, url_for

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
    intents = _parts().kb.intents.values()
    faqs = sorted((i.id, i.title) for i in intents if i.kind == "faq")
    kinds = sorted((i.id, i.label) for i in intents if i.then == "handoff")  # a ticket's kind = its intent
    return render_template("ops_index.html", page=found, form=form, pages=pages, page_url=page_url,
                           intents=faqs, kinds=kinds, filtered=bool(filters))


def _ticket_or_404(ticket_id: int):
    """The ticket, or a 404 page."""
    found = _parts().store.tickets.get(ticket_id)
    if found is None:
        abort(404)
    return found


def conversation(transcript: list[dict], messages: list) -> list[dict]:
    """Chat bubbles: the customer's and the bot's lines plus ops replies (with whether each reached
    the customer), in time order."""
    bubbles = [{"side": "customer" if m["direction"] == "in" else "bot", "who": "", "text": m["text"],
                "at": m["at"], "delivery": ""} for m in transcript]
    desk = _parts().desk
    bubbles += [{"side": "ops", "who": actor_name(m.author), "text": m.text, "at": m.at,
                 "delivery": desk.delivery_label(m.delivery) if m.delivery else ""}
                for m in messages if m.who == "ops"]
    return sorted(bubbles, key=lambda b: b["at"])


def attachment_views(ticket_id: int) -> list[dict]:
    """Each image: `url` shows its kept copy; `open` fetches it now (media API) or goes to PicUrl."""
    views = []
    for a in _parts().store.conversations.ticket_attachments(ticket_id):
        route = url_for("ops.attachment", attachment_id=a.id)
        views.append({"url": route if a.stored else None, "open": route, "media": a.media})
    return views


def _ticket_label(ticket) -> str:
    """What kind of ticket this is, from its FAQ (handoff.label or title)."""
    intent = _parts().kb.intents.get(ticket.intent)
    return intent.label if intent else ticket.intent


def _notice(done: str, ticket) -> str | None:
    """The line shown after a POST: the desk's status line ("action:outcome"), or a fixed notice."""
    action, _, outcome = done.partition(":")
    if outcome:
        return _parts().kb.render("desk-status", action=action, outcome=outcome, ticket=ticket.number)
    return NOTICES.get(done)


def ticket(ticket_id: int):
    """One ticket: words, tax ID, flags, images, the conversation, notes and history."""
    store = _parts().store
    found = _ticket_or_404(ticket_id)
    events = store.tickets.events(ticket_id)
    kb = _parts().kb
    intent = kb.intents.get(found.intent)
    task = kb.part(found.intent, "handoff.ops", ticket=found.number, tax_id=found.tax_id, words=found.words)
    messages = store.conversations.ticket_messages(ticket_id)
    return render_template(
        "ops_ticket.html", t=found, intent=intent, events=events, attachments=attachment_views(ticket_id),
        chat=conversation(store.turns.recent_messages(found.user, TRANSCRIPT_LINES), messages), task=task,
        sends_done=bool(intent and intent.handoff), notes=[e for e in events if e["kind"] == "note"],
        notice=_notice(request.args.get("done", ""), found))


def _back(ticket_id: int, done: str):
    """Redirect (303) to the ticket page with a notice."""
    return redirect(url_for("ops.ticket", ticket_id=ticket_id, done=done), 303)


def _actor() -> str:
    """Who acts, for the ticket history: "console:<operator>"."""
    return f"console:{g.operator}"


def actor_name(actor: str) -> str:
    """An event's actor in words: the operator's name, "命令行 root", "企业微信 zhang", "机器人" ("" stays "")."""
    where, _, name = actor.partition(":")
    if not name:
        return {"bot": "机器人", "ops": "运营"}.get(actor, actor)
    return {"console": name, "cli": f"命令行 {name}", "wecom": f"企业微信 {name}"}.get(where, actor)


def _text_field() -> str:
    """The posted text, trimmed to MAX_TEXT_CHARS."""
    return request.form.get("text", "").strip()[:MAX_TEXT_CHARS]


def resolve(ticket_id: int):
    """Mark done (after the confirm): the customer is told what to do next — the notice says
    whether that message went out, waits for their next message, or the ticket was done already."""
    outcome = _parts().desk.resolve(ticket_id, actor=_actor())
    if outcome.ticket is None:
        abort(404)
    log.info("ops console: %s resolved ticket %s (%s)", g.operator, ticket_id, outcome.outcome)
    return _back(ticket_id, f"resolve:{outcome.outcome}")


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
    outcome = _parts().desk.reply(ticket_id, text, actor=_actor())
    if outcome.ticket is None:
        abort(404)
    return _back(ticket_id, f"reply:{outcome.outcome}")


def note(ticket_id: int):
    """An internal note on the ticket (never sent to the customer)."""
    text = _text_field()
    if not text:
        return _back(ticket_id, "empty")
    if _parts().desk.note(ticket_id, text, actor=_actor()).ticket is None:
        abort(404)
    return _back(ticket_id, "noted")


def attachment(attachment_id: int):
    """An image a customer sent: the kept copy (fetched with the media API if need be), else a
    redirect to WeChat's PicUrl while it lasts."""
    found = _parts().desk.attachment(attachment_id)
    if found is None:
        media = _parts().store.conversations.attachment_file(attachment_id)
        if media is not None and media.pic_url.startswith(("http://", "https://")):
            return redirect(media.pic_url)
        abort(404)
    content_type, data = found
    return Response(data, content_type=content_type,
                    headers={"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"})


ROUTES = (  # (rule, view, methods): explicit routing
    ("/login", ops_session.login, ["GET", "POST"]), ("/logout", ops_session.logout, ["POST"]),
    ("/logout-everywhere", ops_session.logout_everywhere, ["POST"]), ("/", index, ["GET"]),
    ("/tickets/<int:ticket_id>", ticket, ["GET"]), ("/tickets/<int:ticket_id>/resolve", resolve, ["POST"]),
    ("/tickets/<int:ticket_id>/reopen", reopen, ["POST"]), ("/tickets/<int:ticket_id>/reply", reply, ["POST"]),
    ("/tickets/<int:ticket_id>/note", note, ["POST"]), ("/insight", ops_insight.insight, ["GET"]),
    ("/insight/explain", ops_insight.explain, ["GET"]), ("/report", ops_insight.report, ["GET"]),
    ("/attachments/<int:attachment_id>", attachment, ["GET"]),
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
    bp.app_context_processor(lambda: {"operator": g.get("operator", ""), "csrf": g.get("csrf", ""),
                                      "ticket_label": _ticket_label})
    for rule, view, methods in ROUTES:
        bp.add_url_rule(rule, view.__name__, view, methods=methods)
    return bp
