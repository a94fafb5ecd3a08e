"""Per-second series and the self-contained HTML report (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.load.assertions import check_all, parse_target
from bench.load.report import render_report, write_report
from bench.load.series import Series, SeriesData, bucket_of, bucket_value
from bench.load.summary import LoadCounters, LoadSummary
from bench.load.verdict import RunCheck


def test_buckets_are_narrow_and_ordered() -> None:
    for latency in (0.02, 0.5, 1.0, 7.3, 42.0, 999.0):
        assert bucket_value(bucket_of(latency)) == pytest.approx(latency, rel=0.05)
    assert bucket_of(0.0) == 0
    assert bucket_of(1.0) < bucket_of(1.1) < bucket_of(2.0)


def test_worker_series_merge_and_take_forgets() -> None:
    worker, master = Series(), Series()
    worker.add("sent", 100.2)
    worker.add("sent", 100.9)
    worker.add("ingested", 101.1)
    worker.latency("ingest", 101.1, 3.0)
    master.merge(worker.take().model_dump())
    assert worker.take() == SeriesData()
    other = Series()
    other.add("sent", 100.5)
    master.merge(other.snapshot())
    data = SeriesData.model_validate_json(master.snapshot().model_dump_json())
    assert list(data.seconds()) == [100, 101]
    assert (data.count("sent", 100), data.count("ingested", 101)) == (3, 1)
    assert data.quantile("ingest", 0.99) == pytest.approx(3.0, rel=0.05)
    assert data.quantile("unlock", 0.99) is None


def _summary() -> LoadSummary:
    return LoadSummary(
        duration_s=2.0,
        counters=LoadCounters(devices=2, connected=2, sent=4, ingested=3, lost=1),
        stages=[],
        planned_devices=2,
    )


def test_report_shows_verdict_counters_and_charts(tmp_path: Path) -> None:
    series = Series()
    for second, sent in ((10, 2), (11, 2)):
        series.add("sent", second, sent)
        series.add("ingested", second + 0.5)
        series.latency("ingest", second, 4.0)
        series.latency("publish", second, 1.0)
    series.add("connected", 10, 2)
    summary = _summary()
    results = check_all([parse_target("loss==0"), parse_target("telemetry.p99<5ms")], summary)
    checks = [RunCheck("devices connected", True, "2/2 devices connected")]
    page = write_report(
        tmp_path / "r.html", summary, series.snapshot(), checks, results
    ).read_text()
    assert '<p class="verdict fail">FAIL</p>' in page  # loss==0 missed
    assert "<code>loss==0</code>" in page and "2/2 devices connected" in page
    assert page.count("<svg") == 2 + 4  # throughput, connected, and ingest/publish x2
    assert "connect latency per second (p50, p99): no samples" in page
    assert "<polyline" in page
    assert "<script" not in page and "http" not in page


def test_histogram_bars_span_half_a_doubling() -> None:
    series = Series()
    # Recorded buckets 52..75: three doublings (8 buckets each) from the start of bar 13.
    for bucket in (52, 53, 60, 66, 72, 75):
        series.latency("publish", 1, bucket_value(bucket))
    page = render_report(_summary(), series.snapshot(), [], [])
    histogram = page[page.index("publish latency histogram") :]
    histogram = histogram[: histogram.index("</svg>")]
    # Six bars, two per doubling, empty ones included (bars 14 and 17 hold nothing).
    assert histogram.count("<rect") == 6


def test_report_escapes_what_it_shows() -> None:
    checks = [RunCheck("<b>", False, "<script>alert(1)</script>")]
    page = render_report(_summary(), SeriesData(), checks, [])
    assert "<script>alert" not in page
    assert "&lt;script&gt;" in page
