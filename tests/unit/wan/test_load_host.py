"""``aurora-bench load --on-load-host``: master here, workers on the WAN bench's load host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cmd_load import RunPlan, _load_host, locust_command, worker_command
from bench.errors import BenchError
from bench.load.options import LoadOptions


def test_the_master_waits_for_remote_workers_instead_of_forking_its_own() -> None:
    plan = RunPlan(
        devices=10, workers=2, master_port=5601, worker_netns="ns-load", master_host="10.0.0.1"
    )
    master = locust_command(LoadOptions(), plan)
    assert "--processes" not in master
    assert master[master.index("--expect-workers") + 1] == "2"
    assert master[master.index("--master-bind-host") + 1] == "10.0.0.1"
    worker = worker_command(plan)
    assert worker[:4] == ["ip", "netns", "exec", "ns-load"]
    assert worker[worker.index("--master-host") + 1] == "10.0.0.1"
    assert worker[worker.index("--master-port") + 1] == "5601"


def test_a_local_run_forks_its_workers_as_before() -> None:
    command = locust_command(LoadOptions(), RunPlan(devices=10, workers=3, master_port=5602))
    assert command[command.index("--processes") + 1] == "3"
    assert "--master" not in command
    with pytest.raises(BenchError, match="worker_netns"):
        worker_command(RunPlan(devices=1))


def test_the_load_host_comes_from_wan_json(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="aurora-bench up --sites a,b --wan"):
        _load_host(tmp_path)
    (tmp_path / "wan.json").write_text(
        json.dumps({"load_netns": "aurora-wan3-load", "master_address": "10.201.3.13"})
    )
    assert _load_host(tmp_path) == ("aurora-wan3-load", "10.201.3.13")
    (tmp_path / "wan.json").write_text("[1, 2]")
    with pytest.raises(BenchError, match="not a JSON object"):
        _load_host(tmp_path)
