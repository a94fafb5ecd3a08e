"""Reports of scenario runs: JSON and a self-contained HTML page.

Pure: each function turns results into text; :func:`write_report` picks the format from
the file suffix. The HTML page shows, per scenario, the steps with their latencies (time
from a step's action to each satisfying event) and the whole timeline. JUnit XML is
pytest's (``--junitxml``), written for the same run.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.scenario.report_charts import FILTER_SCRIPT, latency_histograms, timeline_chart
from bench.scenario.results import ExpectationResult, ScenarioResult, failure_text
from bench.scenario.timeline import EventKind

REPORT_SUFFIXES = (".json", ".html", ".htm")


def to_json(results: Sequence[ScenarioResult]) -> dict[str, Any]:
    """The whole run as one JSON document."""
    return {
        # Nothing run is not a pass: a verdict never passes vacuously.
        "passed": bool(results) and all(r.passed for r in results),
        "scenarios": [r.to_json() for r in results],
        "summary": {
            "total": len(results),
            "passed": sum(r.passed for r in results),
            "failed": sum(not r.passed for r in results),
            "duration_s": round(sum(r.duration_s for r in results), 3),
        },
    }


_STYLE = """
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em} h2{font-size:1.15em;margin-top:2em}
.pass{color:#17803d} .fail{color:#c0262d}
table{border-collapse:collapse;margin:.5em 0 1em} td,th{padding:2px 8px;text-align:left;
vertical-align:top;border-bottom:1px solid #eee} th{background:#f5f5f5}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.bar{display:inline-block;height:9px;background:#5b8def;vertical-align:middle}
details{margin:.3em 0} pre{background:#f7f7f7;padding:.6em;overflow:auto}
tr.k-step td{font-weight:600;background:#fafafa} tr.k-alert td{color:#b45309}
tr.k-command td,tr.k-lock td{color:#1d4ed8}
td.obs{color:#555;max-width:28em} .charts svg{margin:0 1em 1em 0}
.filters label{margin-right:.8em} svg.timeline{display:block;margin:.5em 0}
"""


def html_report(results: Sequence[ScenarioResult], title: str = "aurora-bench scenarios") -> str:
    """A self-contained HTML page."""
    e = html.escape
    passed = sum(r.passed for r in results)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{e(title)}: {passed}/{len(results)} passed</h1>",
        "<table><tr><th>scenario</th><th>result</th><th>duration</th><th>file</th></tr>",
    ]
    for index, result in enumerate(results):
        parts.append(
            f"<tr><td><a href='#s{index}'>{e(result.name)}</a></td>"
            f"<td class='{_cls(result.passed)}'>{_word(result.passed)}</td>"
            f"<td class='num'>{result.duration_s:.2f}s</td><td>{e(result.path)}</td></tr>"
        )
    parts.append("</table>")
    for index, result in enumerate(results):
        parts.append(_scenario_html(index, result))
    parts.append(f"<script>{FILTER_SCRIPT}</script></body></html>")
    return "\n".join(parts)


def _cls(ok: bool) -> str:
    return "pass" if ok else "fail"


def _word(ok: bool) -> str:
    return "passed" if ok else "FAILED"


def _scenario_html(index: int, result: ScenarioResult) -> str:
    e = html.escape
    out = [
        "<section>",
        f"<h2 id='s{index}'>{e(result.name)} "
        f"<span class='{_cls(result.passed)}'>{_word(result.passed)}</span></h2>",
        f"<div>{e(result.path)} &middot; started {e(result.started_at)} &middot; "
        f"{result.duration_s:.2f}s</div>",
    ]
    if not result.passed:
        out.append(f"<pre>{e(failure_text(result))}</pre>")
    scale = max([0.001, *(latency_s for _, latency_s in result.latencies())])
    out.append(latency_histograms(result))
    out.append(
        "<table><tr><th>at</th><th>step</th><th>action</th><th>action time</th>"
        "<th>expectation</th><th>observed</th><th>result</th><th>latency</th><th></th></tr>"
    )
    for step in result.steps:
        rows: list[ExpectationResult | None] = [*step.expectations] or [None]
        for row, expectation in enumerate(rows):
            head = (
                f"<td class='num'>{step.started:.3f}s</td><td>{e(step.name)}</td>"
                f"<td>{e(step.action or '-')} {e(step.detail)}"
                f"{'<br><span class=fail>' + e(step.error) + '</span>' if step.error else ''}"
                f"</td><td class='num'>{step.action_s * 1000:.1f}ms</td>"
                if row == 0
                else "<td></td><td></td><td></td><td></td>"
            )
            if expectation is None:
                out.append(f"<tr>{head}<td>-</td><td></td><td></td><td></td><td></td></tr>")
                continue
            latency = expectation.latency_s
            bar = (
                f"<span class='bar' style='width:{max(1, int(160 * latency / scale))}px'></span>"
                if latency is not None and expectation.passed
                else ""
            )
            shown = f"{latency * 1000:.1f}ms" if latency is not None else ""
            observed = expectation.observed
            short = observed if len(observed) <= 160 else observed[:157] + "..."
            out.append(
                f"<tr>{head}<td>{e(expectation.description)}</td>"
                f"<td class='obs' title='{e(observed[:2000])}'>{e(short)}</td>"
                f"<td class='{_cls(expectation.passed)}'>{e(expectation.verdict.value)}</td>"
                f"<td class='num'>{shown}</td><td>{bar}</td></tr>"
            )
    out.append("</table>")
    out.append(f"<h3>timeline ({len(result.events)} events)</h3>")
    out.append(timeline_chart(result, index))
    out.append(f"<details><summary>all {len(result.events)} events</summary>")
    out.append(
        "<table><tr><th>t</th><th>kind</th><th>site</th><th>device</th><th>source</th>"
        "<th>what</th></tr>"
    )
    for event in result.events:
        data = json.dumps(dict(event.data), default=str)
        out.append(
            f"<tr class='k-{event.kind.value}' data-source='{e(event.source)}'>"
            f"<td class='num'>{event.t:.3f}s</td>"
            f"<td>{e(event.kind.value)}</td><td>{e(event.site or '')}</td>"
            f"<td>{e(event.device or '')}</td><td>{e(event.source)}</td>"
            f"<td title='{e(data[:2000])}'>{e(_what(event.kind, event.summary()))}</td></tr>"
        )
    out.append("</table></details></section>")
    return "\n".join(out)


def _what(kind: EventKind, summary: str) -> str:
    # The summary starts with "[site]kind device"; the table has columns for those.
    return summary.split(" ", 2)[-1] if kind is not EventKind.STEP else summary


def write_report(path: Path | str, results: Sequence[ScenarioResult]) -> Path:
    """Write a report; the format follows the suffix (.json or .html)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        text = json.dumps(to_json(results), indent=2) + "\n"
    elif suffix in {".html", ".htm"}:
        text = html_report(results)
    else:
        raise BenchError(
            f"cannot tell the report format of {path}: use a name ending in "
            f"{', '.join(REPORT_SUFFIXES)}"
        )
    return _write(path, text)


def _write(path: Path, text: str) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise BenchError(f"cannot write the report {path}: {error.strerror}") from None
    return path
