"""``make bench``'s HTML page, written beside results.json: each figure against its goal
and its same-run baseline, so a reader sees at a glance what is met and by how much.

Self-contained (inline CSS and SVG, no script, no CDN); every value is escaped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.perf.figures import Figure

#: A goal as the figures' notes state it: ``goal >= 20,000`` or ``goal p99 <= 10 ms``.
_GOAL = re.compile(r"goal[^<>=≤≥]*(?P<op><=|>=|<|>|≤|≥)\s*(?P<value>[0-9][0-9,]*(\.[0-9]+)?)")
_OPS = {"≤": "<=", "≥": ">="}


def goal_of(figure: Figure) -> tuple[str, float] | None:
    """The (operator, value) goal a figure's note states, if it states one."""
    match = _GOAL.search(figure.note)
    if match is None:
        return None
    op = _OPS.get(match["op"], match["op"])
    return op, float(match["value"].replace(",", ""))


def goal_met(value: float, goal: tuple[str, float]) -> bool:
    """Whether ``value`` meets the goal."""
    op, target = goal
    return {
        "<=": value <= target,
        "<": value < target,
        ">=": value >= target,
        ">": value > target,
    }[op]


def _bar(value: float, goal: tuple[str, float] | None, met: bool | None) -> str:
    """A small bar: the value against the goal's mark (the goal at 2/3 of the width)."""
    if goal is None or goal[1] <= 0:
        return ""
    width = 160
    scale = (2 * width / 3) / goal[1]
    filled = max(1.0, min(width, value * scale))
    colour = "#2da44e" if met else "#cf222e"
    mark = 2 * width / 3
    return (
        f'<svg width="{width}" height="12" role="img" aria-label="value against goal">'
        f'<rect width="{width}" height="12" fill="#eaeef2"/>'
        f'<rect width="{filled:.1f}" height="12" fill="{colour}"/>'
        f'<line x1="{mark:.1f}" x2="{mark:.1f}" y1="0" y2="12" stroke="#24292f" '
        'stroke-width="2"/></svg>'
    )


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def render_html(figures: Sequence[Figure], failures: Sequence[str] = ()) -> str:
    """The page's HTML."""
    rows = []
    met_count = missed = 0
    for figure in figures:
        goal = goal_of(figure)
        met = goal_met(figure.value, goal) if goal else None
        if met is True:
            met_count += 1
        elif met is False:
            missed += 1
        verdict = {True: "met", False: "missed", None: ""}[met]
        rows.append(
            "<tr>"
            f"<td>{html.escape(figure.name)}</td>"
            f'<td class="num">{_num(figure.value)}</td>'
            f"<td>{html.escape(figure.unit)}</td>"
            f'<td class="num">{_num(figure.baseline)}</td>'
            f'<td class="num">{_num(figure.ratio)}</td>'
            f"<td>{html.escape(f'{goal[0]} {goal[1]:,g}') if goal else ''}</td>"
            f'<td class="{verdict}">{verdict}</td>'
            f"<td>{_bar(figure.value, goal, met)}</td>"
            f"<td>{html.escape(figure.note)}</td>"
            "</tr>"
        )
    for failure in failures:
        name, _, reason = failure.partition(": ")
        rows.append(
            f'<tr class="failed"><td>{html.escape(name)} (measurement)</td>'
            f'<td colspan="8">FAILED: {html.escape(reason)}</td></tr>'
        )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>aurora-bench figures</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #24292f; }}
table {{ border-collapse: collapse; }}
th, td {{ padding: 4px 10px; border-bottom: 1px solid #d0d7de;
  text-align: left; vertical-align: middle; }}
th {{ background: #f6f8fa; }} .num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.met {{ color: #1a7f37; font-weight: 600; }} .missed {{ color: #cf222e; font-weight: 600; }}
.failed td {{ color: #cf222e; }}
</style></head><body>
<h1>aurora-bench: <code>make bench</code></h1>
<p>{stamp} · {len(figures)} figures · goals met {met_count}, missed {missed}
{f"· {len(failures)} measurement(s) FAILED" if failures else ""}.
The ratio is value / baseline, both measured in the same run; the bar's mark is the goal.</p>
<table><thead><tr><th>figure</th><th>value</th><th>unit</th><th>baseline</th><th>ratio</th>
<th>goal</th><th></th><th>value vs goal</th><th>note</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table></body></html>
"""


def write_html(figures: Sequence[Figure], failures: Sequence[str], path: Path) -> Path:
    """Write the page to ``path`` (normally ``.bench/results.html``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(figures, failures), encoding="utf-8")
    return path
