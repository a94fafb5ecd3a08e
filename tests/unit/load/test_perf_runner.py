"""Pure parts of ``make bench``: rate choice, module discovery, the results table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from bench.errors import BenchError
from bench.perf import runner
from bench.perf.figures import Figure, write_results
from bench.perf.ingest import moderate_rate


@pytest.mark.parametrize(
    ("ingest", "cap", "rate"),
    [
        (30_000.0, 5_000.0, 5_000.0),  # the 5,000 msg/s when the machine has room
        (6_000.0, 5_000.0, 1_000.0),  # a quarter of what the backend ingests, rounded down
        (3_000.0, 200.0, 200.0),  # the tiny configuration's cap
        (10.0, 5_000.0, 50.0),  # never below the smallest candidate
    ],
)
def test_moderate_rate(ingest: float, cap: float, rate: float) -> None:
    assert moderate_rate(ingest, cap) == rate


def test_missing_module_is_skipped_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    measurements = (
        runner.Measurement("ingest", "bench.perf.ingest"),
        runner.Measurement("ghost", "bench.perf.not_written_yet"),
    )
    monkeypatch.setattr(runner, "MEASUREMENTS", measurements)
    available, notes = runner.load_measurements()
    assert [m.name for m, _ in available] == ["ingest"]
    assert notes == ["ghost: skipped (bench.perf.not_written_yet is not in this build)"]


def test_unknown_selection_names_the_choices() -> None:
    with pytest.raises(BenchError, match="unknown measurement\\(s\\) bogus; choose from"):
        runner.load_measurements(["bogus"])


def test_table_and_results_schema(tmp_path: Path) -> None:
    figures = [
        Figure("broker.throughput", 20_000, "msg/s"),
        Figure("ingest.throughput", 5_000, "msg/s", baseline=20_000),
    ]
    console = Console(record=True, width=160)
    console.print(runner.render_figures(figures))
    text = console.export_text()
    assert "ingest.throughput" in text
    assert "0.25" in text  # the ratio column
    path = write_results(figures, tmp_path / "results.json")
    data = json.loads(path.read_text())
    assert data["ingest.throughput"] == {"value": 5_000, "unit": "msg/s", "baseline": 20_000}
    assert data["broker.throughput"]["baseline"] is None


def test_hot_frames_inclusive_shares() -> None:
    from bench.perf.profile import hot_frames

    lines = [
        "main (backend/__main__.py:3);loop_read (paho/mqtt/client.py:10) 6\n",
        "main (backend/__main__.py:3);add_many (backend/bus/streams.py:99) 3\n",
        # Recursion and another line of the same function count once per stack.
        "main (backend/__main__.py:4);main (backend/__main__.py:5);idle (other.py:1) 1\n",
        "garbage line\n",
    ]
    frames = {frame: share for share, frame in hot_frames(lines)}
    assert frames["main (backend/__main__.py)"] == 100.0
    assert frames["loop_read (paho/mqtt/client.py)"] == 60.0
    assert frames["add_many (backend/bus/streams.py)"] == 30.0
    assert "idle (other.py)" not in frames  # not on the ingest path
    assert hot_frames([]) == []
