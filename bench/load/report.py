"""The HTML report of ``aurora-bench load --html``: one self-contained page.

What a performance tester looks at first: the verdict (every run check and ``--assert``
target with its measured value), the counters (devices, sent, ingested, lost, duplicates),
messages per second *sent* and *ingested* over time (counted by the bench per message, not
locust's request rate, which adds acks, ingests and connects together), connected devices
over time, and per stage (connect, publish, ingest, unlock) the p50/p99 latency per second
and the latency histogram. Charts are inline SVG (:mod:`bench.load.svg`); no script and no
network access, so the file opens anywhere and can be archived by CI. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path

from bench.load.assertions import TargetResult
from bench.load.series import BUCKETS_PER_DOUBLING, STAGES, SeriesData, bucket_value
from bench.load.summary import LoadSummary
from bench.load.svg import PALETTE, Line, bar_chart, line_chart
from bench.load.verdict import RunCheck

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1360px}
h1{font-size:20px} h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0} td,th{border:1px solid #ccc;padding:3px 8px}
th{background:#f3f3f3;text-align:left} td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#137333;font-weight:600} .fail{color:#c5221f;font-weight:600}
.verdict{font-size:18px;padding:8px 12px;display:inline-block;border-radius:4px}
.verdict.pass{background:#e6f4ea} .verdict.fail{background:#fce8e6}
.charts{display:flex;flex-wrap:wrap;gap:12px}
svg.chart{border:1px solid #ddd;background:#fff} svg.chart text{font-size:11px;fill:#444}
svg.chart line.grid{stroke:#eee} p.empty{color:#888;width:640px}
"""


def _outcome(passed: bool) -> str:
    return '<span class="pass">PASS</span>' if passed else '<span class="fail">FAIL</span>'


def _verdict(checks: Sequence[RunCheck], results: Sequence[TargetResult]) -> str:
    passed = all(c.passed for c in checks) and all(r.passed for r in results)
    rows = [
        f"<tr><td>{_outcome(c.passed)}</td><td>run</td><td>{escape(c.name)}</td>"
        f"<td>{escape(c.message)}</td></tr>"
        for c in checks
    ] + [
        f"<tr><td>{_outcome(r.passed)}</td><td>target</td><td><code>"
        f"{escape(r.target.text)}</code></td><td>{escape(r.message)}</td></tr>"
        for r in results
    ]
    verdict = "pass" if passed else "fail"
    return (
        f'<p class="verdict {verdict}">{verdict.upper()}</p>'
        "<table><tr><th>result</th><th>kind</th><th>check</th><th>measured</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _counters(summary: LoadSummary) -> str:
    c = summary.counters
    rows = [
        ("devices planned", f"{summary.planned_devices:,}"),
        ("devices connected", f"{c.connected:,}"),
        ("connect failures", f"{c.connect_failures:,}"),
        ("messages sent", f"{c.sent:,} ({summary.sent_per_s:,.1f} msg/s)"),
        ("messages ingested", f"{c.ingested:,} ({summary.ingested_per_s:,.1f} msg/s)"),
        ("lost (incl. pending)", f"{c.unaccounted:,} ({summary.loss_pct:.2f} %)"),
        ("duplicates", f"{c.duplicates:,}"),
        ("late", f"{c.late:,}"),
        ("duration", f"{summary.duration_s:.1f} s"),
    ]
    return (
        "<table>"
        + "".join(f'<tr><th>{escape(k)}</th><td class="num">{escape(v)}</td></tr>' for k, v in rows)
        + "</table>"
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _stages(summary: LoadSummary) -> str:
    head = "".join(
        f"<th>{h}</th>"
        for h in ("stage", "kind", "count", "fail", "msg/s", "avg", "p50", "p95", "p99", "max")
    )
    rows = "".join(
        f"<tr><td>{escape(r.stage)}</td><td>{escape(r.name)}</td>"
        f'<td class="num">{r.count}</td><td class="num">{r.failures}</td>'
        f'<td class="num">{r.rate_per_s:,.1f}</td>'
        + "".join(
            f'<td class="num">{_ms(v)}</td>'
            for v in (r.avg_ms, r.p50_ms, r.p95_ms, r.p99_ms, r.max_ms)
        )
        + "</tr>"
        for r in summary.stages
    )
    return f"<table><tr>{head}</tr>{rows}</table><p>latency in ms</p>"


def _problems(summary: LoadSummary) -> str:
    if not summary.problems:
        return "<p>none</p>"
    rows = "".join(
        f"<tr><td>{escape(p.cause)}</td><td>{escape(p.reason)}</td>"
        f'<td class="num">{p.count}</td><td>{escape(p.first)}</td></tr>'
        for p in summary.problems
    )
    return (
        "<table><tr><th>cause</th><th>reason</th><th>count</th><th>first message</th></tr>"
        f"{rows}</table>"
    )


def _throughput(series: SeriesData) -> str:
    seconds = series.seconds()
    if not seconds:
        return line_chart("messages per second", [], x_label="s", y_label="msg/s")
    start = seconds.start
    lines = [
        Line(name, [(s - start, float(series.count(name, s))) for s in seconds], PALETTE[i])
        for i, name in enumerate(("sent", "ingested", "lost"))
    ]
    x_range = (0.0, float(max(len(seconds) - 1, 1)))
    total = 0
    connected: list[tuple[float, float | None]] = []
    for s in seconds:
        total += series.count("connected", s)
        connected.append((s - start, float(total)))
    return line_chart(
        "messages per second: sent vs ingested",
        lines,
        x_label="run time (s)",
        y_label="msg/s",
        x_range=x_range,
    ) + line_chart(
        "devices connected (cumulative)",
        [Line("connected", connected, PALETTE[2])],
        x_label="run time (s)",
        y_label="devices",
        x_range=x_range,
    )


def _stage_charts(series: SeriesData, stage: str) -> str:
    seconds = series.seconds()
    start = seconds.start if seconds else 0
    lines = [
        Line(
            label,
            [(s - start, series.quantile(stage, fraction, s)) for s in seconds],
            PALETTE[i],
        )
        for i, (label, fraction) in enumerate((("p50", 0.5), ("p99", 0.99)))
    ]
    over_time = line_chart(
        f"{stage} latency per second (p50, p99)",
        lines,
        x_label="run time (s)",
        y_label="ms",
        x_range=(0, max(len(seconds) - 1, 1)),
    )
    # Recorded buckets are ~9 % wide (8 per doubling); a bar groups _BARS_PER_BUCKET of them.
    merged: dict[int, int] = {}
    for row in series.latency.get(stage, {}).values():
        for bucket, count in row.items():
            bar = bucket // _BARS_PER_BUCKET
            merged[bar] = merged.get(bar, 0) + count
    bars = [
        (_ms_label(bucket_value(bar * _BARS_PER_BUCKET) * _HALF_BAR), merged.get(bar, 0))
        for bar in range(min(merged, default=0), max(merged, default=-1) + 1)
    ]
    histogram = bar_chart(f"{stage} latency histogram", bars, x_label="ms", y_label="messages")
    return f'<h3>{escape(stage)}</h3><div class="charts">{over_time}{histogram}</div>'


_BARS_PER_BUCKET = 4  # two bars per doubling of latency
#: From the middle of a bar's first bucket to the middle of the bar.
_HALF_BAR = 2 ** ((_BARS_PER_BUCKET - 1) / 2 / BUCKETS_PER_DOUBLING)


def _ms_label(value: float) -> str:
    return f"{value:.2g}" if value < 10 else f"{value:.0f}"


def render_report(
    summary: LoadSummary,
    series: SeriesData,
    checks: Sequence[RunCheck],
    results: Sequence[TargetResult],
    *,
    title: str = "aurora-bench load",
) -> str:
    """The whole page as one HTML string."""
    stages = "".join(_stage_charts(series, stage) for stage in STAGES)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        f"<h2>Verdict</h2>{_verdict(checks, results)}"
        f"<h2>Counters</h2>{_counters(summary)}"
        f'<h2>Throughput</h2><div class="charts">{_throughput(series)}</div>'
        f"<h2>Latency per stage</h2>{stages}"
        f"<h2>Stages</h2>{_stages(summary)}"
        f"<h2>Errors by cause</h2>{_problems(summary)}"
        "</body></html>\n"
    )


def write_report(
    path: Path,
    summary: LoadSummary,
    series: SeriesData,
    checks: Sequence[RunCheck],
    results: Sequence[TargetResult],
    *,
    title: str = "aurora-bench load",
) -> Path:
    """Write :func:`render_report` to ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(summary, series, checks, results, title=title))
    return path
