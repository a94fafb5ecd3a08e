"""Summary maths, assertion grammar and JUnit output of load runs (pure, no servers)."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from bench.load.assertions import AssertionSyntaxError, check_all, parse_target
from bench.load.junit import write_junit
from bench.load.summary import (
    LoadCounters,
    LoadSummary,
    percentile,
    percentile_of,
    render_summary,
    summarize,
)
from bench.load.verdict import RunCheck


def test_percentile_nearest_rank() -> None:
    histogram = {1: 50, 2: 45, 10: 4, 40: 1}  # 100 samples
    assert percentile(histogram, 0.50) == 1
    assert percentile(histogram, 0.51) == 2
    assert percentile(histogram, 0.95) == 2
    assert percentile(histogram, 0.99) == 10
    assert percentile(histogram, 1.0) == 40
    assert percentile({}, 0.5) is None
    assert percentile_of([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile_of([1.0, 2.0], 0.5) == 1.0
    # The scenario latency checks (p50/p99 of pairs) use the same function.
    assert percentile_of([5, 1, 3, 2, 4], 0.50) == 3
    assert percentile_of(list(range(1, 101)), 0.99) == 99
    assert percentile_of([7.0], 0.99) == 7.0
    assert percentile_of([], 0.99) is None
    with pytest.raises(ValueError, match="fraction"):
        percentile(histogram, 0)


def _entry(method: str, name: str, times: dict[int, int], failures: int = 0) -> dict[str, object]:
    count = sum(times.values())
    return {
        "method": method,
        "name": name,
        "num_requests": count,
        "num_failures": failures,
        "total_response_time": sum(k * v for k, v in times.items()),
        "max_response_time": max(times, default=0),
        # As after a JSON round trip: keys are strings.
        "response_times": {str(k): v for k, v in times.items()},
    }


def _summary() -> LoadSummary:
    entries = [
        _entry("INGEST", "telemetry", {2: 90, 5: 9, 30: 1}),
        _entry("MQTT", "telemetry", {1: 100}),
        _entry("UNLOCK", "unlock", {8: 10}),
        _entry("LOST", "telemetry", {0: 2}, failures=2),
        _entry("MQTT", "connect", {3: 4}),
        _entry("GET", "/other", {1: 1}),
    ]
    counters = LoadCounters(devices=4, connected=4, sent=102, ingested=100, lost=2)
    return summarize(entries, counters, duration_s=10.0)


def test_summarize_rows_by_stage_and_rates() -> None:
    summary = _summary()
    assert [(row.stage, row.name) for row in summary.stages] == [
        ("connect", "connect"),
        ("publish", "telemetry"),
        ("ingest", "telemetry"),
        ("unlock", "unlock"),
        ("lost", "telemetry"),
    ]
    ingest = summary.row("ingest", "telemetry")
    assert ingest is not None
    assert (ingest.p50_ms, ingest.p95_ms, ingest.p99_ms, ingest.max_ms) == (2, 5, 5, 30)
    assert ingest.avg_ms == pytest.approx((180 + 45 + 30) / 100)
    assert ingest.rate_per_s == 10.0
    lost = summary.row("lost", "telemetry")
    assert lost is not None
    assert lost.failures == 2
    assert lost.p99_ms is None  # a loss has no latency
    assert summary.sent_per_s == pytest.approx(10.2)
    assert summary.ingested_per_s == 10.0
    assert summary.loss_pct == pytest.approx(100 * 2 / 102)
    assert LoadSummary.model_validate_json(summary.model_dump_json()) == summary


def test_counters_add_up_across_workers() -> None:
    total = LoadCounters(sent=3, lost=1).plus(LoadCounters(sent=4, duplicates=2))
    assert (total.sent, total.lost, total.duplicates) == (7, 1, 2)


def test_render_summary_shows_rows(tmp_path: Path) -> None:
    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(render_summary(_summary()))
    text = console.export_text()
    assert "ingested 100 (10 msg/s)" in text
    assert "lost 2 (1.96 %)" in text
    assert "unlock" in text


@pytest.mark.parametrize(
    ("text", "stage", "name", "stat", "op", "limit"),
    [
        ("telemetry.p99<50ms", "ingest", "telemetry", "p99", "<", 50.0),
        ("unlock.p99 <= 0.02 s", "unlock", "unlock", "p99", "<=", 20.0),
        ("publish:telemetry.rate>=100/s", "publish", "telemetry", "rate", ">=", 100.0),
        ("loss==0", None, None, "loss", "==", 0.0),
        ("loss_pct<0.1%", None, None, "loss_pct", "<", 0.1),
    ],
)
def test_parse_targets(
    text: str, stage: str | None, name: str | None, stat: str, op: str, limit: float
) -> None:
    target = parse_target(text)
    assert (target.stage, target.name, target.stat, target.op, target.limit) == (
        stage,
        name,
        stat,
        op,
        limit,
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("telemetry.p99", "expected TARGET OP NUMBER"),
        ("telemetry.p42<5ms", "unknown statistic"),
        ("bogus:telemetry.p99<5ms", "unknown stage"),
        ("telemetry.count<5ms", "not a time"),
        ("telemetry.p99<5%", "is a time"),
        ("loss<5ms", "not a time"),
        ("p99<5", "neither NAME.STAT nor a run total"),
    ],
)
def test_bad_targets_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(AssertionSyntaxError, match=problem) as caught:
        parse_target(text)
    assert "telemetry.p99<50ms" in str(caught.value)  # the message shows an example


def test_check_targets_and_junit(tmp_path: Path) -> None:
    summary = _summary()
    targets = [
        parse_target(text)
        for text in ("telemetry.p99<10ms", "telemetry.max<10ms", "loss==0", "badge_event.p99<5ms")
    ]
    results = check_all(targets, summary)
    assert [result.passed for result in results] == [True, False, False, False]
    assert results[0].actual == 5.0
    assert "no samples" in results[3].message
    checks = [RunCheck("devices connected", False, "3/4 devices connected: connect ...")]
    path = write_junit(tmp_path / "junit.xml", checks, results)
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("5", "4")
    failed = [case.get("name") for case in suite if case.find("failure") is not None]
    assert failed == ["devices connected", "telemetry.max<10ms", "loss==0", "badge_event.p99<5ms"]
    message = suite.find("testcase/failure")
    assert message is not None and message.get("message", "").startswith("3/4 devices")
