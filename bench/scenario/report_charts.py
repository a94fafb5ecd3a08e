"""Pictures for the scenario HTML report: latency histograms per expectation kind and a
timeline of events by source, with filters. Pure string building, self-contained (inline
SVG and a few lines of inline script; no CDN); every text is escaped."""

from __future__ import annotations

import html
import itertools
from collections import defaultdict
from collections.abc import Sequence

from bench.load.svg import PALETTE, bar_chart
from bench.scenario.results import ScenarioResult

#: Latency bins in milliseconds (upper bounds); the last bin is open.
BINS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
_LANE_H, _LEFT, _WIDTH = 18, 110, 760


def latency_bins(latencies_ms: Sequence[float]) -> list[tuple[str, int]]:
    """Counts per bin, labelled ``<1``, ``1-2`` ... ``>=1000`` (ms)."""
    counts = [0] * (len(BINS_MS) + 1)
    for value in latencies_ms:
        index = next((i for i, top in enumerate(BINS_MS) if value < top), len(BINS_MS))
        counts[index] += 1
    labels = [f"<{BINS_MS[0]}"]
    labels += [f"{lo}-{hi}" for lo, hi in itertools.pairwise(BINS_MS)]
    labels.append(f">={BINS_MS[-1]}")
    return list(zip(labels, counts, strict=True))


def latency_histograms(result: ScenarioResult) -> str:
    """One histogram per expectation kind that timed a latency (``lock``, ``command``...)."""
    by_kind: dict[str, list[float]] = defaultdict(list)
    for step in result.steps:
        for expectation in step.expectations:
            if expectation.latency_s is not None:
                by_kind[expectation.kind or "other"].append(expectation.latency_s * 1000)
    if not by_kind:
        return ""
    charts = [
        bar_chart(
            f"{kind}: {len(values)} latencies, max {max(values):.1f} ms",
            latency_bins(values),
            x_label="ms",
            y_label="expectations",
        )
        for kind, values in sorted(by_kind.items())
    ]
    return "<div class='charts'>" + "".join(charts) + "</div>"


def timeline_chart(result: ScenarioResult, index: int) -> str:
    """Events as dots on one lane per source, and checkboxes that filter the chart and the
    timeline table below it by source."""
    if not result.events:
        return ""
    e = html.escape
    sources = sorted({event.source for event in result.events})
    end = max([event.t for event in result.events] + [0.001])
    height = _LANE_H * len(sources) + 24
    parts = [
        f"<div class='filters' data-report='{index}'>sources: "
        + "".join(
            f"<label><input type='checkbox' checked data-source='{e(source)}'> {e(source)}</label> "
            for source in sources
        )
        + "</div>",
        f"<svg class='timeline' width='{_WIDTH}' height='{height}' role='img' "
        f"aria-label='events by source over time' id='tl{index}'>",
    ]
    for lane, source in enumerate(sources):
        y = 12 + lane * _LANE_H
        colour = PALETTE[lane % len(PALETTE)]
        parts.append(
            f"<g data-source='{e(source)}'><text x='4' y='{y + 4}' font-size='11'>"
            f"{e(source)}</text><line x1='{_LEFT}' x2='{_WIDTH - 8}' y1='{y}' y2='{y}' "
            "stroke='#eee'/>"
        )
        for event in result.events:
            if event.source != source:
                continue
            x = _LEFT + (_WIDTH - _LEFT - 8) * event.t / end
            parts.append(
                f"<circle cx='{x:.1f}' cy='{y}' r='3' fill='{colour}'>"
                f"<title>{event.t:.3f}s {e(event.summary())}</title></circle>"
            )
        parts.append("</g>")
    parts.append(
        f"<text x='{_LEFT}' y='{height - 4}' font-size='11'>0 s</text>"
        f"<text x='{_WIDTH - 8}' y='{height - 4}' font-size='11' text-anchor='end'>"
        f"{end:.2f} s</text></svg>"
    )
    return "".join(parts)


#: Hides the chart lane and the table rows of an unticked source (per scenario section).
FILTER_SCRIPT = """
document.querySelectorAll('.filters input').forEach(function (box) {
  box.addEventListener('change', function () {
    var section = box.closest('section');
    var source = box.dataset.source;
    section.querySelectorAll('[data-source="' + CSS.escape(source) + '"]').forEach(
      function (node) { if (node !== box) node.style.display = box.checked ? '' : 'none'; });
  });
});
"""
