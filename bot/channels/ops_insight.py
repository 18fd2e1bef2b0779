"""The console's insight page: the figures of bot/tools/insight.py drawn as SVG charts, and why the
matcher left a question unanswered (the `python -m bot explain` view)."""
from __future__ import annotations

import time
from datetime import timedelta

from flask import current_app, redirect, render_template, request, url_for

from bot.localtime import local_day, zone
from bot.tools.charts import Series, bar_chart, histogram
from bot.tools.explain import explanation, format_explanation
from bot.tools.insight import collect, duration_text, explain_command, parse_range

QUICK_RANGES = (7, 30, 90)  # the "last N days" links
MAX_QUESTION_CHARS = 300


def _parts():
    """The app's parts (set by create_app)."""
    return current_app.extensions["bot"]


def charts(found) -> list:
    """The page's three charts."""
    labels = [d.day.strftime("%m-%d") for d in found.days]
    per_day = bar_chart("每天的工单（新建 / 完成）", labels, [
        Series("新建", tuple(d.opened for d in found.days)),
        Series("完成", tuple(d.resolved for d in found.days))])
    questions = bar_chart("每天的问题（已答 / 澄清 / 未答）", labels, [
        Series("已答", tuple(d.answered for d in found.days)),
        Series("澄清", tuple(d.clarified for d in found.days)),
        Series("未答", tuple(d.unanswered for d in found.days))], stacked=True)
    spans = histogram("处理时长分布（已完成的工单）", found.buckets())
    return [per_day, spans, questions]


def insight():
    """Tickets per day, time to resolve, answered vs clarified vs unanswered, top unanswered."""
    parts = _parts()
    tz = zone(parts.config.server.timezone)
    today, error = local_day(time.time(), tz), ""
    try:
        first, last = parse_range(request.args.get("from"), request.args.get("to"), today)
    except ValueError as exc:
        first, last = parse_range(None, None, today)
        error = str(exc)
    smalltalk = frozenset(i.id for i in parts.kb.intents.values() if i.kind == "smalltalk")
    found = collect(parts.store.console.insight.rows, first, last, tz, smalltalk)
    return render_template("ops_insight.html", found=found, charts=charts(found), error=error,
                           median=duration_text(found.median), p90=duration_text(found.p90),
                           quick=[(n, (today - timedelta(days=n - 1)).isoformat()) for n in QUICK_RANGES],
                           today=today.isoformat())


def explain():
    """Why a question got no answer: what `python -m bot explain` prints, and that command."""
    question = request.args.get("q", "").strip()[:MAX_QUESTION_CHARS]
    if not question:
        return redirect(url_for("ops.insight"), 303)
    data = explanation(_parts().kb.matcher, question)
    return render_template("ops_explain.html", question=question, data=data, text=format_explanation(data),
                           command=explain_command(question))


def report():
    """The old report URL: the insight page has it all."""
    return redirect(url_for("ops.insight"), 301)
