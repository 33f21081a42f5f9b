"""Charts as inline SVG, drawn on the server: no JavaScript, no chart library.

Every chart is an ``<svg role="img">`` with a title and a description for screen readers, and
a ``<title>`` per bar or point that browsers show on hover. The pages put the numbers in tables
beside the charts as well.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import date

from markupsafe import Markup, escape

from registry_ui.formats import number_text

INK = "#1f2937"
MUTED = "#4b5563"
GRID = "#d1d5db"
BAR = "#1d4ed8"
LINE = "#b45309"


def _frame(width: int, height: int, title: str, description: str, body: list[str]) -> Markup:
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title><desc>{escape(description)}</desc>" + "".join(body) + "</svg>"
    )


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: int = 11, fill: str = MUTED) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{fill}" text-anchor="{anchor}">{escape(text)}</text>'
    )


def histogram(
    edges: Sequence[float], counts: Sequence[int], *, title: str, width: int = 300, height: int = 130
) -> Markup:
    """Bars of ``counts`` between consecutive ``edges`` (``len(edges) == len(counts) + 1``)."""
    if not counts or len(edges) != len(counts) + 1:
        return _frame(width, 30, title, "no histogram", [_text(4, 18, "no histogram")])
    left, right, top, bottom = 8, 8, 8, 22
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(max(counts), 1)
    step = plot_w / len(counts)
    body = [f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="{GRID}"/>']
    for i, n in enumerate(counts):
        h = plot_h * n / peak
        x = left + i * step
        label = f"{number_text(edges[i])} to {number_text(edges[i + 1])}: {n:,}"
        body.append(
            f'<rect x="{x + 0.5:.1f}" y="{top + plot_h - h:.1f}" width="{max(step - 1, 1):.1f}" height="{h:.1f}" '
            f'fill="{BAR}"><title>{escape(label)}</title></rect>'
        )
    body.append(_text(left, height - 6, number_text(edges[0])))
    body.append(_text(width - right, height - 6, number_text(edges[-1]), anchor="end"))
    body.append(_text(width - right, top + 10, f"max {peak:,}", anchor="end", size=10))
    description = (
        f"{len(counts)} bins from {number_text(edges[0])} to {number_text(edges[-1])}, at most {peak:,} values"
    )
    return _frame(width, height, title, description, body)


def trend(
    points: Sequence[tuple[str, float | None]],
    *,
    title: str,
    width: int = 300,
    height: int = 130,
    fmt: Callable[[float | None], str] = number_text,
) -> Markup:
    """A line through ``(label, value)`` points in order (oldest first); ``None`` leaves a gap."""
    values = [v for _, v in points if v is not None and math.isfinite(v)]
    if not values:
        return _frame(width, 30, title, "no values", [_text(4, 18, "no values yet")])
    left, right, top, bottom = 8, 8, 14, 22
    plot_w, plot_h = width - left - right, height - top - bottom
    low, high = min(values), max(values)
    if high == low:
        low, high = low - (abs(low) or 1) * 0.5, high + (abs(high) or 1) * 0.5
    n = len(points)

    def xy(i: int, v: float) -> tuple[float, float]:
        x = left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)
        return x, top + plot_h - plot_h * (v - low) / (high - low)

    body = [f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="{GRID}"/>']
    segment: list[str] = []
    segments: list[list[str]] = []
    for i, (_, v) in enumerate(points):
        if v is None or not math.isfinite(v):
            if segment:
                segments.append(segment)
            segment = []
            continue
        x, y = xy(i, v)
        segment.append(f"{x:.1f},{y:.1f}")
    if segment:
        segments.append(segment)
    body.extend(
        f'<polyline points="{" ".join(s)}" fill="none" stroke="{LINE}" stroke-width="2"/>' for s in segments if s
    )
    for i, (label, v) in enumerate(points):
        if v is None or not math.isfinite(v):
            continue
        x, y = xy(i, v)
        body.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{LINE}"><title>{escape(label)}: {escape(fmt(v))}</title></circle>'
        )
    last = next(v for _, v in reversed(points) if v is not None and math.isfinite(v))
    body.append(_text(left, 10, f"min {fmt(min(values))} · max {fmt(max(values))}", size=10))
    body.append(_text(width - right, height - 6, f"latest {fmt(last)}", anchor="end", fill=INK))
    body.append(_text(left, height - 6, f"{n} run{'s' if n != 1 else ''}"))
    description = (
        f"{len(values)} values over {n} runs, from {fmt(min(values))} to {fmt(max(values))}, latest {fmt(last)}"
    )
    return _frame(width, height, title, description, body)


def daily_bars(series: Sequence[tuple[date, int]], *, title: str, width: int = 720, height: int = 160) -> Markup:
    """One bar per day (``series`` oldest first, every day present, zeros included)."""
    if not series:
        return _frame(width, 30, title, "no days", [_text(4, 18, "no days")])
    left, right, top, bottom = 44, 8, 10, 22
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(max(n for _, n in series), 1)
    step = plot_w / len(series)
    body = [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="{GRID}"/>',
        f'<line x1="{left}" y1="{top}" x2="{left + plot_w}" y2="{top}" stroke="{GRID}" stroke-dasharray="3 3"/>',
        _text(left - 4, top + 4, f"{peak:,}", anchor="end", size=10),
        _text(left - 4, top + plot_h, "0", anchor="end", size=10),
    ]
    for i, (day, n) in enumerate(series):
        h = plot_h * n / peak
        body.append(
            f'<rect x="{left + i * step + 0.5:.1f}" y="{top + plot_h - h:.1f}" width="{max(step - 1, 1):.1f}" '
            f'height="{h:.1f}" fill="{BAR}"><title>{day.isoformat()}: {n:,} reads</title></rect>'
        )
    body.append(_text(left, height - 6, series[0][0].isoformat()))
    body.append(_text(width - right, height - 6, series[-1][0].isoformat(), anchor="end"))
    total = sum(n for _, n in series)
    description = (
        f"{total:,} reads over {len(series)} days from {series[0][0]} to {series[-1][0]}, at most {peak:,} a day"
    )
    return _frame(width, height, title, description, body)
