"""The scenario report's pictures: latency histograms per expectation kind, the timeline by
source with its filters, observed values shown in the table, everything escaped."""

from __future__ import annotations

from bench.scenario.report import html_report
from bench.scenario.report_charts import latency_bins, latency_histograms, timeline_chart
from bench.scenario.results import ExpectationResult, ScenarioResult, StepResult
from bench.scenario.runner import expectation_kind
from bench.scenario.timeline import Event, EventKind
from bench.scenario.windows import Verdict


def expectation(kind: str, latency_ms: float | None, observed: str = "seen") -> ExpectationResult:
    return ExpectationResult(
        description=f"{kind} thing",
        verdict=Verdict.PASSED,
        expected="x",
        observed=observed,
        kind=kind,
        latency_s=None if latency_ms is None else latency_ms / 1000,
    )


def result() -> ScenarioResult:
    step = StepResult(
        name="s",
        action="swipe",
        started=0.0,
        expectations=[
            expectation("lock", 3.0),
            expectation("lock", 7.5),
            expectation("command", 0.4, observed="<b>door-1</b> unlock"),
            expectation("no_alert", None),
        ],
    )
    events = [
        Event(0.1, EventKind.COMMAND, "mqtt", "a", "door-1", {"verb": "unlock"}),
        Event(0.2, EventKind.LOCK, "node", "a", "door-1", {"state": "unlocked"}),
        Event(0.3, EventKind.NOTE, "<board>", "a", "door-1", {"text": "x"}),
    ]
    return ScenarioResult(name="n", path="p.yaml", steps=[step], events=events)


def test_bins_cover_every_latency_once() -> None:
    bins = latency_bins([0.5, 1.5, 3, 3, 2000])
    assert sum(count for _, count in bins) == 5
    assert dict(bins)["<1"] == 1
    assert dict(bins)["2-5"] == 2
    assert dict(bins)[">=1000"] == 1


def test_one_histogram_per_kind_that_timed_a_latency() -> None:
    page = latency_histograms(result())
    assert "lock: 2 latencies" in page
    assert "command: 1 latencies" in page
    assert "no_alert" not in page


def test_timeline_has_a_lane_and_a_filter_per_source_escaped() -> None:
    page = timeline_chart(result(), 0)
    assert page.count("type='checkbox'") == 3
    assert "data-source='mqtt'" in page
    assert "<board>" not in page
    assert "&lt;board&gt;" in page


def test_the_report_shows_observed_values_and_filters_the_table() -> None:
    page = html_report([result()])
    assert "&lt;b&gt;door-1&lt;/b&gt; unlock" in page  # visible, not only on hover
    assert "<b>door-1</b>" not in page
    assert "data-source='node'" in page
    assert "<script>" in page


def test_expectation_kind_is_the_yaml_key() -> None:
    class NoAlertExpect:
        pass

    class LockExpect:
        pass

    assert expectation_kind(NoAlertExpect()) == "no_alert"
    assert expectation_kind(LockExpect()) == "lock"
