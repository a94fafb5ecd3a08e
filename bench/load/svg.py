"""Small inline SVG charts for self-contained HTML reports (no script, no CDN).

Two kinds are enough for the load report: a line chart of several series against time and a
bar chart (histograms). Pure string building; every text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 640, 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 12, 14, 34
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


@dataclass(frozen=True, slots=True)
class Line:
    """One series of a line chart: ``points`` are (x, y); a ``None`` y breaks the line."""

    label: str
    points: Sequence[tuple[float, float | None]]
    color: str = PALETTE[0]


def _nice_max(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2, 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def _fmt(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:g}" if value >= 1 else f"{value:.2g}"


def _frame(title: str, x_label: str, y_label: str, y_max: float, x_ticks: str) -> list[str]:
    plot_h = HEIGHT - _TOP - _BOTTOM
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for i in range(5):
        value = y_max * i / 4
        y = _TOP + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{_LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{_fmt(value)}</text>'
        )
    parts.append(x_ticks)
    parts.append(
        f'<text x="{(WIDTH + _LEFT) / 2:.0f}" y="{HEIGHT - 4}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
        f'<text x="12" y="{_TOP + plot_h / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 12 {_TOP + plot_h / 2:.0f})">{escape(y_label)}</text>'
    )
    return parts


def line_chart(
    title: str,
    lines: Sequence[Line],
    *,
    x_label: str,
    y_label: str,
    x_range: tuple[float, float] | None = None,
) -> str:
    """A line chart with a legend; an empty chart says so instead of drawing axes only.

    ``x_range`` fixes the x axis (charts of one run share it); by default the data's span.
    """
    xs = [x for line in lines for x, y in line.points if y is not None]
    ys = [y for line in lines for _, y in line.points if y is not None]
    if not xs:
        return f'<p class="empty">{escape(title)}: no samples</p>'
    x_min, x_max = x_range or (min(xs), max(xs))
    x_span = (x_max - x_min) or 1.0
    y_max = _nice_max(max(ys))
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM

    def px(x: float) -> float:
        return _LEFT + plot_w * (x - x_min) / x_span

    def py(y: float) -> float:
        return _TOP + plot_h - plot_h * min(y, y_max) / y_max

    ticks = "".join(
        f'<text x="{px(x_min + x_span * i / 4):.1f}" y="{HEIGHT - _BOTTOM + 14}" '
        f'text-anchor="middle">{_fmt(x_min + x_span * i / 4)}</text>'
        for i in range(5)
    )
    parts = _frame(title, x_label, y_label, y_max, ticks)
    for index, line in enumerate(lines):
        segments: list[list[str]] = [[]]
        for x, y in line.points:
            if y is None:
                segments.append([])
            else:
                segments[-1].append(f"{px(x):.1f},{py(y):.1f}")
        for segment in segments:
            if len(segment) == 1:
                x_text, y_text = segment[0].split(",")
                parts.append(f'<circle cx="{x_text}" cy="{y_text}" r="2" fill="{line.color}"/>')
            elif segment:
                parts.append(
                    f'<polyline fill="none" stroke="{line.color}" stroke-width="1.6" '
                    f'points="{" ".join(segment)}"/>'
                )
        legend_x = _LEFT + 8 + 150 * index
        parts.append(
            f'<rect x="{legend_x}" y="{_TOP}" width="10" height="10" fill="{line.color}"/>'
            f'<text x="{legend_x + 14}" y="{_TOP + 9}">{escape(line.label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(title: str, bars: Sequence[tuple[str, int]], *, x_label: str, y_label: str) -> str:
    """Bars in the given order, labelled below (every few when there are many)."""
    if not bars or not any(count for _, count in bars):
        return f'<p class="empty">{escape(title)}: no samples</p>'
    y_max = _nice_max(max(count for _, count in bars))
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    width = plot_w / len(bars)
    every = max(1, math.ceil(len(bars) / 8))
    ticks = "".join(
        f'<text x="{_LEFT + width * (i + 0.5):.1f}" y="{HEIGHT - _BOTTOM + 14}" '
        f'text-anchor="middle">{escape(label)}</text>'
        for i, (label, _) in enumerate(bars)
        if i % every == 0
    )
    parts = _frame(title, x_label, y_label, y_max, ticks)
    for i, (label, count) in enumerate(bars):
        height = plot_h * count / y_max
        parts.append(
            f'<rect x="{_LEFT + width * i + 1:.1f}" y="{_TOP + plot_h - height:.1f}" '
            f'width="{max(width - 2, 1):.1f}" height="{height:.1f}" fill="{PALETTE[0]}">'
            f"<title>{escape(label)}: {count}</title></rect>"
        )
    parts.append("</svg>")
    return "".join(parts)
