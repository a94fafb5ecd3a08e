"""``aurora-bench load`` against a real site: ingested, zero loss, latency per stage, targets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from bench.load.series import SeriesData
from bench.load.summary import LoadSummary
from bench.site import RunningBench

CLI = [sys.executable, "-m", "bench"]


def _load(state_dir: str, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "load", "--state-dir", state_dir, *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def test_short_run_is_ingested_without_loss(bench_one: RunningBench, tmp_path: Path) -> None:
    summary_file, junit = tmp_path / "summary.json", tmp_path / "junit.xml"
    html = tmp_path / "report.html"
    result = _load(
        bench_one.info.state_dir,
        *("--devices", "12", "--rate", "120", "--duration", "3", "--drain", "10"),
        *("--workers", "2", "--id-prefix", "itload"),
        *("--json", str(summary_file), "--junit", str(junit), "--html", str(html)),
        *("--assert", "loss==0", "--assert", "telemetry.p99<0.001ms"),
    )
    # The impossible target fails the run; the loss target passes.
    assert result.returncode == 1, result.stdout + result.stderr
    assert "PASS loss = 0" in result.stdout
    assert "FAIL ingest:telemetry.p99" in result.stdout
    assert "connected 12" in result.stdout

    summary = LoadSummary.model_validate_json(summary_file.read_text())
    counters = summary.counters
    assert counters.connected == 12
    assert counters.sent > 12  # status of each device plus periodic traffic
    assert counters.ingested == counters.sent
    assert counters.lost == 0
    assert counters.duplicates == 0
    for kind in ("status", "telemetry"):
        ingest = summary.row("ingest", kind)
        publish = summary.row("publish", kind)
        assert ingest is not None and publish is not None, kind
        assert ingest.count == publish.count
        assert ingest.p50_ms is not None and ingest.p99_ms is not None
        assert 0 <= ingest.p50_ms <= ingest.p99_ms
    assert summary.row("lost", "telemetry") is None
    # Doors swipe the granted load badge; the backend answers each with unlock.
    unlock = summary.row("unlock", "unlock")
    assert unlock is not None
    assert unlock.count > 0
    assert unlock.failures == 0

    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    # Five run checks (all passed) and two targets (one missed).
    assert (suite.get("tests"), suite.get("failures")) == ("7", "1")
    assert summary.planned_devices == 12
    assert summary.problems == []

    # The series behind the report counts each message once: sent and ingested per second
    # add up to the run's totals (locust's chart added acks, ingests and connects together).
    series = SeriesData.model_validate_json(
        (Path(bench_one.info.state_dir) / "load" / "series.json").read_text()
    )
    seconds = series.seconds()
    assert sum(series.count("sent", s) for s in seconds) == counters.sent
    assert sum(series.count("ingested", s) for s in seconds) == counters.ingested
    assert sum(series.count("connected", s) for s in seconds) == 12
    assert sum(series.histogram("ingest").values()) == counters.ingested
    page = html.read_text()
    assert "messages per second: sent vs ingested" in page
    for stage in ("connect", "publish", "ingest", "unlock"):
        assert f"{stage} latency per second" in page
        assert f"{stage} latency histogram" in page
    assert "<code>telemetry.p99&lt;0.001ms</code>" in page
    assert "src=" not in page and "http" not in page  # self-contained: nothing fetched


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--assert", "telemetry.p42<5ms"), "unknown statistic"),
        (("--boards", "esp8266=1"), "unknown board 'esp8266'"),
        (("--site", "zz"), "site 'zz' is not running"),
    ],
)
def test_bad_input_is_one_clear_line(
    bench_one: RunningBench, args: tuple[str, ...], message: str
) -> None:
    result = _load(
        bench_one.info.state_dir, "--devices", "1", "--rate", "1", "--duration", "1", *args
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_bench_says_to_start_one(tmp_path: Path) -> None:
    result = _load(str(tmp_path), "--devices", "1", "--rate", "1", "--duration", "1")
    assert result.returncode == 2
    assert "aurora-bench up" in result.stderr
