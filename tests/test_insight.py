"""The week at a glance: figures per day in the display zone, time to resolve, the SVG charts, the
insight page and `python -m bot report` showing the same numbers."""
from __future__ import annotations

import json
import re
import time
from datetime import date, datetime, timedelta

import pytest
from markupsafe import escape

from bot.localtime import zone
from bot.model import Inbound
from bot.store.base import TurnRecord
from bot.tools.charts import Series, bar_chart, histogram
from bot.tools.explain import explanation, format_explanation
from bot.tools.insight import MAX_DAYS, collect, duration_text, explain_command, format_insight, parse_range
from tests.console_cases import console_app, logged_in, make_ticket
from tests.test_cli import run

TZ = zone("Asia/Shanghai")
DAY1, DAY2 = date(2026, 5, 13), date(2026, 5, 14)
HOUR = 3600.0


def at(day: date, hour: float) -> float:
    """Epoch seconds of `hour` o'clock on `day` in Shanghai."""
    return datetime(day.year, day.month, day.day, tzinfo=TZ).timestamp() + hour * HOUR


ROWS = {
    "tickets": [(at(DAY1, 23.5), at(DAY2, 0.5)), (at(DAY2, 0.5), None), (at(DAY2, 9), at(DAY2, 13))],
    "resolved": [(at(DAY1, 23.5), at(DAY2, 0.5)), (at(DAY2, 9), at(DAY2, 13)), (at(DAY1, 1), at(DAY1, 2))],
    "hits": [(at(DAY1, 10), "leqi-ids-swapped"), (at(DAY1, 11), "greeting"), (at(DAY2, 10), "leqi-channel-missing")],
    "clarified": [at(DAY2, 8)], "unanswered": [at(DAY1, 12), at(DAY2, 12), at(DAY2, 13)],
    "top_unanswered": [{"text": "收费吗", "count": 2, "last_at": at(DAY2, 13)}],
}


def test_figures_are_bucketed_by_day_in_the_display_zone():
    """23:30 and 00:30 (UTC+8) fall on two days; small talk is not an answered question."""
    found = collect(lambda since, until, top: ROWS, DAY1, DAY2, TZ, frozenset({"greeting"}))
    days = [(d.day, d.opened, d.resolved, d.answered, d.clarified, d.unanswered) for d in found.days]
    assert days == [(DAY1, 1, 1, 1, 0, 1), (DAY2, 2, 2, 1, 1, 2)]
    assert found.resolve_seconds == (HOUR, HOUR, 4 * HOUR)
    assert (found.median, found.p90) == (HOUR, 4 * HOUR)
    assert dict(found.buckets())["1–4 小时"] == 2 and dict(found.buckets())["4–12 小时"] == 1


def test_the_store_is_asked_for_whole_days():
    asked = []
    collect(lambda since, until, top: asked.append((since, until)) or ROWS, DAY1, DAY2, TZ, frozenset())
    assert asked == [(at(DAY1, 0), at(DAY2 + timedelta(days=1), 0))]


@pytest.mark.parametrize("since, until, expected", [
    (None, None, (DAY2 - timedelta(days=6), DAY2)),
    ("2026-05-01", "2026-05-03", (date(2026, 5, 1), date(2026, 5, 3))),
    ("2026-05-03", "2026-05-01", (date(2026, 5, 1), date(2026, 5, 3))),  # reversed: swapped
    ("2020-01-01", None, (DAY2 - timedelta(days=MAX_DAYS - 1), DAY2)),  # too long: the last MAX_DAYS
    (" ", "", (DAY2 - timedelta(days=6), DAY2)),
])
def test_date_ranges(since, until, expected):
    assert parse_range(since, until, DAY2) == expected


def test_a_malformed_date_is_a_clear_error():
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        parse_range("05/13", None, DAY2)


@pytest.mark.parametrize("seconds, text", [(None, "—"), (30, "1 分钟"), (1800, "30 分钟"),
                                           (5400, "1.5 小时"), (3 * 86400, "3.0 天")])
def test_durations_read_naturally(seconds, text):
    assert duration_text(seconds) == text


def test_bars_have_one_rect_per_value_scaled_to_the_largest():
    svg = str(bar_chart("t", ["05-13", "05-14"], [Series("新建", (1, 4)), Series("<完成>", (0, 2))]))
    heights = [float(h) for h in re.findall(r'<rect class="s\d" [^>]*height="([\d.]+)"', svg)]
    assert len(heights) == 4 and heights[2] == max(heights) and heights[1] == 0  # day by day
    assert heights[2] == pytest.approx(2 * heights[3]) == pytest.approx(4 * heights[0])
    assert "&lt;完成&gt;" in svg and "<完成>" not in svg and 'role="img"' in svg


def test_stacked_bars_and_the_histogram():
    stacked = str(bar_chart("t", ["a"], [Series("x", (2,)), Series("y", (3,))], stacked=True))
    assert stacked.count("<rect") == 2 and "<title>a y 3</title>" in stacked
    hist = str(histogram("h", [("1 小时内", 3), ("3 天以上", 0)]))
    assert hist.count("<rect") == 2 and ">3</text>" in hist


@pytest.fixture
def busy(tmp_path):
    """A console with two tickets (one resolved), answered, clarified and unanswered questions."""
    app = console_app(tmp_path)
    parts = app.extensions["bot"]
    ticket = make_ticket(parts)
    make_ticket(parts, user="o-2")
    parts.desk.resolve(ticket.id)
    for n, text in enumerate(["红字发票怎么开", "红字发票怎么开", "收费吗"]):
        parts.service.handle(Inbound(user="o-3", kind="text", text=text, msg_id=f"u{n}", created_at=1.0))
    with parts.store.turns.turn("c1", "o-4", time.time()) as turn:
        turn.commit(lambda tx: TurnRecord(clarified=("乐企怎么弄",)))
    return app


def test_the_insight_page_draws_its_charts(busy):
    client, _ = logged_in(busy)
    body = client.get("/ops/insight").get_data(as_text=True)
    assert body.count("<svg") == 3 and "每天的工单" in body and "处理时长" in body
    assert re.search(r"<strong>2</strong>新建工单", body) and re.search(r"<strong>1</strong>完成工单", body)
    assert re.search(r"<strong>1</strong>澄清", body) and re.search(r"<strong>3</strong>未答问题", body)
    first = body.index("红字发票怎么开")
    assert first < body.index("收费吗") and "/ops/insight/explain?q=" in body


def test_the_explain_view_says_why_nothing_answered(busy):
    client, _ = logged_in(busy)
    body = client.get("/ops/insight/explain", query_string={"q": "红字发票怎么开"}).get_data(as_text=True)
    matcher = busy.extensions["bot"].kb.matcher
    assert "没有足够接近的答案" in body and str(escape(explain_command("红字发票怎么开"))) in body
    assert str(escape(format_explanation(explanation(matcher, "红字发票怎么开")))) in body  # what the CLI prints


def test_a_bad_date_on_the_page_falls_back_to_the_last_week(busy):
    client, _ = logged_in(busy)
    body = client.get("/ops/insight?from=yesterday").get_data(as_text=True)
    assert "YYYY-MM-DD" in body and body.count("<svg") == 3


def test_report_prints_the_same_figures(busy, tmp_path):
    config = tmp_path / "bot.toml"
    config.write_text(f'[wechat]\ntoken = "t"\n[storage]\nurl = "sqlite:///{tmp_path}/bot.db"\n', encoding="utf-8")
    text = run("report", "--config", str(config)).stdout
    assert "工单: 新建 2 · 完成 1" in text and "问题: 已答" in text and "澄清 1 · 未答 3" in text
    assert explain_command("红字发票怎么开") in text
    data = json.loads(run("report", "--json", "--days", "1", "--config", str(config)).stdout)["insight"]
    assert sum(d["opened"] for d in data["days"]) == 2 and data["resolve_seconds"]["count"] == 1
    assert data["top_unanswered"][0] == {**data["top_unanswered"][0], "text": "红字发票怎么开", "count": 2}


def test_the_terminal_text_has_every_figure():
    found = collect(lambda since, until, top: ROWS, DAY1, DAY2, TZ, frozenset({"greeting"}))
    text = format_insight(found)
    assert re.search(rf"{DAY2}\s+2\s+2\s+1\s+1\s+2\n", text)
    assert "中位数 1.0 小时 · P90 4.0 小时" in text and "收费吗" in text


@pytest.mark.parametrize("top, ticks", [(0, [0, 1]), (3, [0, 1, 2, 3]), (25, [0, 10, 20, 30]),
                                        (6, [0, 2, 4, 6]), (140, [0, 50, 100, 150])])
def test_axis_ticks_are_round(top, ticks):
    svg = str(bar_chart("t", ["a"], [Series("x", (top,))]))
    assert [int(v) for v in re.findall(r'class="tick"[^>]*>(\d+)<', svg)] == ticks
