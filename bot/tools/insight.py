"""The week at a glance: tickets per day, time to resolve, answered/clarified/unanswered questions
and the top unanswered ones — computed once for the console's insight page and `python -m bot report`."""
from __future__ import annotations

import math
import shlex
import statistics
from dataclasses import dataclass
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from bot.localtime import day_start, days_between, local_day

DEFAULT_DAYS = 7
MAX_DAYS = 92  # a quarter: the page and the query stay small
TOP_UNANSWERED = 10
RESOLVE_BUCKETS = ((3600, "1 小时内"), (4 * 3600, "1–4 小时"), (12 * 3600, "4–12 小时"),
                   (86400, "12–24 小时"), (3 * 86400, "1–3 天"), (math.inf, "3 天以上"))
OUTCOMES = ("answered", "clarified", "unanswered")


@dataclass(frozen=True)
class DayFigures:
    """One calendar day (in the display zone)."""

    day: date
    opened: int = 0
    resolved: int = 0
    answered: int = 0
    clarified: int = 0
    unanswered: int = 0


@dataclass(frozen=True)
class Insight:
    """Everything the insight page and the report show for a date range."""

    first: date
    last: date
    zone: str
    days: tuple[DayFigures, ...]
    resolve_seconds: tuple[float, ...]  # of tickets resolved in the range, sorted
    top_unanswered: tuple[dict, ...]  # {"text", "count", "last_at"}

    @property
    def median(self) -> float | None:
        """Median time to resolve, seconds."""
        return statistics.median(self.resolve_seconds) if self.resolve_seconds else None

    @property
    def p90(self) -> float | None:
        """90th percentile time to resolve (nearest rank), seconds."""
        values = self.resolve_seconds
        return values[math.ceil(0.9 * len(values)) - 1] if values else None

    def total(self, name: str) -> int:
        """Sum of one DayFigures field over the range."""
        return sum(getattr(day, name) for day in self.days)

    def buckets(self) -> list[tuple[str, int]]:
        """How many resolved tickets took how long."""
        counts = [0] * len(RESOLVE_BUCKETS)
        for seconds in self.resolve_seconds:
            counts[next(i for i, (limit, _) in enumerate(RESOLVE_BUCKETS) if seconds < limit)] += 1
        return [(label, n) for (_, label), n in zip(RESOLVE_BUCKETS, counts)]


def parse_range(since: str | None, until: str | None, today: date,
                default_days: int = DEFAULT_DAYS) -> tuple[date, date]:
    """First and last day from YYYY-MM-DD texts (defaults: the last `default_days` to today).

    ValueError on a malformed date; a reversed range is swapped and a long one cut to MAX_DAYS.
    """
    last = _day(until) or today
    first = _day(since) or last - timedelta(days=max(1, default_days) - 1)
    first, last = min(first, last), max(first, last)
    return max(first, last - timedelta(days=MAX_DAYS - 1)), last


def _day(text: str | None) -> date | None:
    """A YYYY-MM-DD text as a date (None when empty)."""
    if not text or not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not a date (YYYY-MM-DD): {text.strip()[:20]!r}") from None


def collect(rows_of, first: date, last: date, tz: ZoneInfo, smalltalk: frozenset[str]) -> Insight:
    """Ask the store (`rows_of(since, until, top)` = InsightRows.insight_rows) and bucket by day."""
    rows = rows_of(day_start(first, tz), day_start(last + timedelta(days=1), tz), TOP_UNANSWERED)
    counts: dict[date, dict[str, int]] = {day: {} for day in days_between(first, last)}

    def count(at: float, name: str) -> None:
        """One more `name` on the day of `at`."""
        day = counts.get(local_day(at, tz))
        if day is not None:
            day[name] = day.get(name, 0) + 1
    for created_at, _ in rows["tickets"]:
        count(created_at, "opened")
    for _, resolved_at in rows["resolved"]:
        count(resolved_at, "resolved")
    for at, intent in rows["hits"]:
        if intent not in smalltalk:
            count(at, "answered")
    for name in ("clarified", "unanswered"):
        for at in rows[name]:
            count(at, name)
    spans = sorted(max(0.0, done - made) for made, done in rows["resolved"])
    days = tuple(DayFigures(day, **figures) for day, figures in counts.items())
    return Insight(first, last, tz.key, days, tuple(spans), tuple(rows["top_unanswered"]))


def duration_text(seconds: float | None) -> str:
    """"45 分钟" / "2.5 小时" / "1.5 天" ("—" for None)."""
    if seconds is None:
        return "—"
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))} 分钟"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} 小时"
    return f"{seconds / 86400:.1f} 天"


def explain_command(question: str) -> str:
    """The shell command that shows why the matcher did not answer `question`."""
    return f"python -m bot explain {shlex.quote(question)}"


def format_insight(insight: Insight) -> str:
    """The insight figures as terminal text (what `python -m bot report` prints)."""
    lines = [f"洞察 {insight.first} … {insight.last}（{insight.zone}）",
             f"工单: 新建 {insight.total('opened')} · 完成 {insight.total('resolved')} · 处理时长 中位数 "
             f"{duration_text(insight.median)} · P90 {duration_text(insight.p90)}"
             f"（{len(insight.resolve_seconds)} 张已完成）",
             f"问题: 已答 {insight.total('answered')} · 澄清 {insight.total('clarified')} · "
             f"未答 {insight.total('unanswered')}",
             "每天（日期  新建  完成  已答  澄清  未答）:"]
    lines += [f"  {d.day}  {d.opened:>4}  {d.resolved:>4}  {d.answered:>4}  {d.clarified:>4}  {d.unanswered:>4}"
              for d in insight.days]
    lines.append("处理时长分布: " + " · ".join(f"{label} {n}" for label, n in insight.buckets()))
    lines.append("最常见的未答问题（次数 · 问题 · 分析命令）:")
    lines += [f"  {row['count']:>4} · {row['text']} · {explain_command(row['text'])}"
              for row in insight.top_unanswered] or ["  （无）"]
    return "\n".join(lines)


def insight_json(insight: Insight) -> dict:
    """The same figures as JSON-ready data."""
    return {
        "first": insight.first.isoformat(), "last": insight.last.isoformat(), "zone": insight.zone,
        "days": [{"day": d.day.isoformat(), "opened": d.opened, "resolved": d.resolved,
                  "answered": d.answered, "clarified": d.clarified, "unanswered": d.unanswered}
                 for d in insight.days],
        "resolve_seconds": {"count": len(insight.resolve_seconds), "median": insight.median, "p90": insight.p90},
        "resolve_buckets": dict(insight.buckets()),
        "top_unanswered": [dict(row) for row in insight.top_unanswered],
    }
