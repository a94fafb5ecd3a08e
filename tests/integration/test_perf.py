"""``python -m bench.perf`` (``make bench``) with the tiny configuration writes results.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

#: The figures of the measurements owned next to the runner (ingest, unlock).
EXPECTED = {
    "broker.throughput": "msg/s",
    "ingest.throughput": "msg/s",
    "unlock.round_trip.idle.p50": "ms",
    "unlock.round_trip.idle.p99": "ms",
}


def test_quick_bench_writes_documented_schema(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "bench.perf", "--quick", "--only", "ingest,unlock"),
            *("--state-dir", str(tmp_path / "state"), "--results", str(results)),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(results.read_text())
    for name, unit in EXPECTED.items():
        assert data[name]["unit"] == unit, name
    for name, figure in data.items():
        # DESIGN.md: {"<figure name>": {"value": N, "unit": "...", "baseline": N|null}}
        assert set(figure) == {"value", "unit", "baseline"}, name
        assert isinstance(figure["value"], int | float), name
        assert figure["baseline"] is None or isinstance(figure["baseline"], int | float), name
    assert data["broker.throughput"]["value"] > 0
    assert data["ingest.throughput"]["value"] > 0
    assert data["ingest.throughput"]["baseline"] == data["broker.throughput"]["value"]
    latency = [name for name in data if name.startswith("ingest.latency@")]
    assert sorted(name.rsplit(".", 1)[1] for name in latency) == ["p50", "p99"]
    loaded = [name for name in data if name.startswith("unlock.round_trip@")]
    assert len(loaded) == 1
    assert data[loaded[0]]["baseline"] == data["unlock.round_trip.idle.p99"]["value"]
    # The table printed is the file's content.
    assert "ingest.throughput" in done.stdout
