"""Wall-clock times for people (console, report) in the configured zone, with the zone shown."""
from __future__ import annotations

import functools
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_ZONE = "Asia/Shanghai"


@functools.cache
def zone(name: str = DEFAULT_ZONE) -> ZoneInfo:
    """The IANA zone `name`; ValueError when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as {DEFAULT_ZONE})") from None


def zone_label(tz: ZoneInfo, at: float) -> str:
    """"UTC+8" style offset of the zone at that moment."""
    offset = datetime.fromtimestamp(at, tz).utcoffset() or timedelta(0)
    hours, rest = divmod(int(offset.total_seconds()), 3600)
    return f"UTC{hours:+d}" + (f":{rest // 60:02d}" if rest else "")


def local_text(at: float | None, tz: ZoneInfo, seconds: bool = False) -> str:
    """"2025-05-14 14:02 UTC+8" (empty for None)."""
    if at is None:
        return ""
    stamp = datetime.fromtimestamp(at, tz).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    return f"{stamp} {zone_label(tz, at)}"


def local_day(at: float, tz: ZoneInfo) -> date:
    """The calendar day of a moment in the zone."""
    return datetime.fromtimestamp(at, tz).date()


def day_start(day: date, tz: ZoneInfo) -> float:
    """Epoch seconds of midnight starting `day` in the zone."""
    return datetime.combine(day, time(0), tz).timestamp()


def days_between(first: date, last: date) -> list[date]:
    """Every day from first to last, both included."""
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]
