"""``python -m bench.perf`` (``make bench``) with the tiny configuration writes results.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.perf.devices import window_rates
from bench.perf.figures import Figure, write_results
from bench.perf.runner import Measurement, PerfConfig, PerfContext, run_measurements

#: Figures every measurement must produce, with their units.
EXPECTED = {
    "broker.throughput": "msg/s",
    "ingest.throughput": "msg/s",
    "ingest.drain": "msg/s",
    "ingest.drain.2_workers": "msg/s",
    "ingest.drain.cpu_per_reading": "us",
    "ingest.catchup": "s",
    "ingest.catchup.lost": "readings",
    "ingest.catchup.duplicated": "entries",
    "unlock.round_trip.idle.p50": "ms",
    "unlock.round_trip.idle.p99": "ms",
    "devices.connected_per_process": "devices",
    "devices.ramp_rate": "connections/s",
    "devices.cert_issue_time": "s",
    "devices.ramp_rate.resumed": "connections/s",
    "devices.client_cpu_per_connect.resumed": "ms",
    "storm.back_s": "s",
    "storm.lost": "messages",
    "storm.resumed_share": "%",
    "federation.propagation.p99": "ms",
    "federation.propagation.lost": "alerts",
    "policy.acl_http.p99": "ms",
    "policy.acl_http.p50": "ms",
    "policy.acl_http.offered_rate": "req/s",
    "policy.acl_http.serial.p99": "ms",
    "policy.acl_http.serial.rate": "req/s",
    "policy_mqtt.publish.cached": "msg/s",
    "policy_mqtt.publish.uncached": "msg/s",
    "device.delivery.subscribe_checked": "msg/s",
    "device.subscribe.checked": "subscribes/s",
}


@pytest.mark.timeout(540)
def test_quick_bench_writes_documented_schema(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    # A figure of an earlier run must not survive a run of every measurement.
    results.write_text(json.dumps({"stale.figure": {"value": 1, "unit": "x", "baseline": None}}))
    done = subprocess.run(
        [
            *(sys.executable, "-m", "bench.perf", "--quick"),
            *("--state-dir", str(tmp_path / "state"), "--results", str(results)),
        ],
        capture_output=True,
        text=True,
        # The Sentinel part starts a three-node cluster and kills its stream leader.
        timeout=480,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(results.read_text())
    assert "stale.figure" not in data
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
    # Issue 17: the backlog after an outage arrives exactly once.
    assert data["ingest.catchup.lost"]["value"] == 0
    assert data["ingest.catchup.duplicated"]["value"] == 0
    latency = [name for name in data if name.startswith("ingest.latency@")]
    assert sorted(name.rsplit(".", 1)[1] for name in latency) == ["p50", "p99"]
    loaded = [name for name in data if name.startswith("unlock.round_trip@")]
    assert len(loaded) == 1
    assert data[loaded[0]]["baseline"] == data["unlock.round_trip.idle.p99"]["value"]
    assert data["devices.connected_per_process"]["value"] == PerfConfig.tiny().devices
    assert data["devices.ramp_rate"]["value"] > 0
    # The resumed ramp's baseline is the full-handshake ramp of the same run.
    assert data["devices.ramp_rate.resumed"]["baseline"] == data["devices.ramp_rate"]["value"]
    assert data["storm.lost"]["value"] == 0
    assert data["federation.propagation.lost"]["value"] == 0
    assert data["sentinel.parts_failed"]["value"] == 0
    assert data["sentinel.failover_lost"]["value"] == 0
    # Delivery to MQTT subscribers is QoS 0 (see README, Sentinel figures): a loaded run
    # may miss a few within the window, so only "alerts arrive" is asserted here.
    assert data["sentinel.fanout_delivered"]["value"] > 0
    assert data["policy.acl_http.offered_rate"]["value"] > 0
    # The table printed is the file's content, and no measurement failed.
    assert "ingest.throughput" in done.stdout
    assert "devices.ramp_rate" in done.stdout
    assert "FAILED" not in done.stdout


async def test_a_failing_measurement_is_reported_and_the_others_still_run() -> None:
    async def broken(_ctx: PerfContext) -> list[Figure]:
        raise RuntimeError("the broker went away")

    async def fine(_ctx: PerfContext) -> list[Figure]:
        return [Figure("fine.value", 1.0, "x")]

    figures, failures = await run_measurements(
        None,  # type: ignore[arg-type]  # neither measurement touches the bench
        PerfConfig.tiny(),
        [(Measurement("broken", "-"), broken), (Measurement("fine", "-"), fine)],
    )
    assert [f.name for f in figures] == ["fine.value"]
    assert failures == ["broken: RuntimeError: the broker went away"]


def test_failed_measurement_is_a_row_of_the_table() -> None:
    from rich.console import Console

    from bench.perf.runner import render_figures

    console = Console(width=200, record=True)
    console.print(render_figures([Figure("fine.value", 1.0, "x")], ["devices: over 9 s"]))
    text = console.export_text()
    assert "devices (measurement)" in text
    assert "FAILED" in text
    assert "over 9 s" in text


def test_results_merge_for_selected_runs_and_replace_for_full_ones(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    write_results([Figure("a", 1.0, "x")], path)
    write_results([Figure("b", 2.0, "x")], path)
    assert set(json.loads(path.read_text())) == {"a", "b"}
    write_results([Figure("c", 3.0, "x")], path, replace=True)
    assert set(json.loads(path.read_text())) == {"c"}


def test_devices_cap_covers_its_own_budgets() -> None:
    default = PerfConfig()
    assert default.timeout_for("devices") > default.ramp_budget_s + 60
    goal = PerfConfig(devices=10_000)
    # 10,000 at the slowest ramp seen here (~70/s) fits the ramp budget and the cap.
    assert goal.ramp_budget_s >= 10_000 / 70
    assert goal.timeout_for("devices") > goal.ramp_budget_s + 10_000 * 0.01
    assert default.timeout_for("unlock") == default.measurement_timeout_s
    # The ingest drain publishes and ingests its backlog: its cap allows 1,000 msg/s.
    assert default.timeout_for("ingest") >= (
        default.measurement_timeout_s + default.drain_messages / 1000
    )


def test_ramp_window_rates() -> None:
    # 100 connections, one every 10 ms at first, one every 20 ms for the last 10.
    done = [0.01 * (i + 1) for i in range(90)] + [0.9 + 0.02 * (i + 1) for i in range(10)]
    start, end = window_rates(0.0, done, 0.1)
    assert round(start) == 100
    assert round(end) == 50
    assert window_rates(0.0, [], 0.1) == (0.0, 0.0)


def test_fresh_site_state_keeps_the_pki(tmp_path: Path) -> None:
    from bench.perf.runner import fresh_site_state

    for folder in ("a/mosquitto", "b", "pki/devices"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "a" / "mosquitto" / "mosquitto.db").write_bytes(b"queued for the backend")
    (tmp_path / "pki" / "devices" / "perf-dev-00000.crt").write_text("cert")
    fresh_site_state(tmp_path, ["a", "b"])
    assert not (tmp_path / "a").exists()
    assert not (tmp_path / "b").exists()
    assert (tmp_path / "pki" / "devices" / "perf-dev-00000.crt").exists()


def test_goal_rate_figure_names_the_goal_rate_and_compares_with_idle() -> None:
    from bench.perf.unlock import _goal_figure

    assert _goal_figure([], 5000.0, 3.0, 0) == []
    (figure,) = _goal_figure([1.0, 2.0, 40.0], 5000.0, 3.0, 3)
    assert figure.name == "unlock.round_trip@5000msg/s.p99"
    assert figure.baseline == 3.0
    assert figure.value >= 2.0
