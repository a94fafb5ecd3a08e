"""``aurora-bench up --sentinel`` as a user runs it: the cluster comes up, bench.json
describes it, and SIGTERM leaves no process behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.up import alive, descendants, sigterm, up, wait_for_bench_file

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_up_sentinel_runs_three_nodes_and_stops_everything(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    with up("--sites", "a", "--no-backend", "--sentinel", "--state-dir", str(state_dir)) as proc:
        wait_for_bench_file(proc, state_dir)
        raw = json.loads((state_dir / "bench.json").read_text())
        sentinel = raw["sentinel"]
        assert [node["region"] for node in sentinel["nodes"]] == ["us-east", "eu-west", "ap-south"]
        for node in sentinel["nodes"]:
            assert set(node) == {"region", "nats", "mqtt", "websocket", "monitor", "pid"}
            assert node["nats"].startswith("tls://127.0.0.1:")
            assert node["websocket"].startswith("wss://127.0.0.1:")
            assert node["websocket"].endswith("/mqtt")
            assert node["mqtt"]["tls"] is True
        origin = sentinel["origin"]
        assert origin["site"] == "a"
        assert Path(origin["publisher_cert"]).is_file()
        assert Path(origin["publisher_key"]).is_file()
        assert sentinel["stream"] == "MQTT_ALERTS"
        logs = state_dir / "sentinel"
        assert (logs / "sentinel-us-east.log").is_file()
        assert (logs / "sentinel-callout-1.log").is_file()

        children = descendants(proc.pid)
        commands = [" ".join(child.cmdline()) for child in children]
        assert sum("sentinel/" in c and "nats.conf" in c for c in commands) == 3
        assert sum("backend.sentinel callout" in c for c in commands) == 2
        assert sum("backend.sentinel worker" in c for c in commands) == 1
        output = sigterm(proc, timeout_s=90)
    assert proc.returncode == 0, output
    assert "Sentinel" in output and "stopped" in output
    assert [child.pid for child in children if alive(child)] == []
    assert not (state_dir / "bench.json").exists()
