"""Small server-rendered SVG charts (no script, nothing fetched): bars per day and a histogram.

Colours come from CSS classes (`.s0`, `.s1`, `.s2` in the console stylesheet); every bar carries a
<title> so a tap or hover shows its value, and the figure has a text alternative.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 480, 220  # viewBox units; the SVG scales to its container (≈ 0.7× on a 390 px phone)
LEFT, RIGHT, TOP, BOTTOM = 34, 6, 12, 34  # room for the y ticks and the day labels
MAX_LABELS = 7  # day labels shown under the bars (others skipped) so they never overlap


@dataclass(frozen=True)
class Series:
    """One coloured series: its name (legend) and a value per category."""

    name: str
    values: tuple[int, ...]


def _ticks(top: int) -> list[int]:
    """Round y-axis values (steps of 1, 2 or 5 × 10ⁿ) from 0 to at least `top`, at most six."""
    wanted = max(1.0, top / 4)
    magnitude = 10 ** math.floor(math.log10(wanted))
    step = next(int(m * magnitude) for m in (1, 2, 5, 10) if m * magnitude >= wanted)
    return list(range(0, max(top, 1) + step, step))[:6]


def _axis(ticks: list[int], scale: float) -> list[str]:
    """Horizontal grid lines with their values."""
    parts = []
    for value in ticks:
        y = HEIGHT - BOTTOM - value * scale
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text class="tick" x="{LEFT - 5}" y="{y + 5:.1f}" text-anchor="end">{value}</text>')
    return parts


def _legend(series: list[Series]) -> str:
    """Coloured keys above the plot."""
    items = "".join(f'<span class="key"><i class="s{i}"></i>{escape(s.name)}</span>' for i, s in enumerate(series))
    return f'<p class="legend">{items}</p>'


def bar_chart(title: str, labels: list[str], series: list[Series], stacked: bool = False) -> Markup:
    """Bars per category (a day): side by side, or stacked when `stacked`."""
    count = max(1, len(labels))
    columns = list(zip(*(s.values for s in series)))
    top = max((sum(col) if stacked else max(col) for col in columns), default=0)
    ticks = _ticks(top)
    scale = (HEIGHT - TOP - BOTTOM) / max(ticks[-1], 1)
    slot = (WIDTH - LEFT - RIGHT) / count
    parts = _axis(ticks, scale)
    every = math.ceil(count / MAX_LABELS)
    for i, label in enumerate(labels):
        parts += _column(i, label, series, slot, scale, stacked)
        if i % every == 0:
            x = LEFT + slot * (i + 0.5)
            parts.append(f'<text class="label" x="{x:.1f}" y="{HEIGHT - BOTTOM + 20}" '
                         f'text-anchor="middle">{escape(label)}</text>')
    return _figure(title, parts, _legend(series))


def _column(i: int, label: str, series: list[Series], slot: float, scale: float, stacked: bool) -> list[str]:
    """The bars of one category."""
    parts, base = [], HEIGHT - BOTTOM
    width = slot * 0.7 / (1 if stacked else len(series))
    for n, s in enumerate(series):
        value = s.values[i]
        height = value * scale
        x = LEFT + slot * i + slot * 0.15 + (0 if stacked else n * width)
        y = base - height
        parts.append(f'<rect class="s{n}" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}">'
                     f'<title>{escape(label)} {escape(s.name)} {value}</title></rect>')
        if stacked:
            base = y
    return parts


def histogram(title: str, rows: list[tuple[str, int]]) -> Markup:
    """Horizontal bars: one row per bucket, its count at the end."""
    row_height, label_width = 30, 104
    height = TOP + row_height * len(rows) + 8
    top = max([n for _, n in rows] or [0]) or 1
    span = WIDTH - label_width - RIGHT - 36
    parts = []
    for i, (label, n) in enumerate(rows):
        y = TOP + i * row_height
        width = span * n / top
        parts.append(f'<text class="label" x="{label_width - 6}" y="{y + 20}" text-anchor="end">{escape(label)}</text>'
                     f'<rect class="s0" x="{label_width}" y="{y + 4}" width="{width:.1f}" height="{row_height - 10}">'
                     f'<title>{escape(label)} {n}</title></rect>'
                     f'<text class="tick" x="{label_width + width + 6:.1f}" y="{y + 20}">{n}</text>')
    return _figure(title, parts, "", height)


def _figure(title: str, parts: list[str], legend: str, height: int = HEIGHT) -> Markup:
    """The chart as a <figure> holding an accessible, scalable SVG."""
    svg = (f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}" '
           f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>{"".join(parts)}</svg>')
    return Markup(f'<figure class="chart-box"><figcaption>{escape(title)}</figcaption>{legend}{svg}</figure>')
