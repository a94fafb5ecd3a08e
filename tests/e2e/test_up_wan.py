"""``aurora-bench up --wan`` as a user runs it: SIGTERM, SIGKILL and a failed start leave no
namespace, veth or process behind (root only; skipped elsewhere)."""

from __future__ import annotations

import json
import subprocess
from contextlib import AbstractContextManager
from pathlib import Path

import psutil
import pytest

from bench.wan.topology import RUN_DIR, support_problem, sweep_orphans
from tests.e2e.up import alive, descendants, sigterm, up, wait_for_bench_file

PROBLEM = support_problem()
pytestmark = pytest.mark.skipif(PROBLEM is not None, reason=PROBLEM or "")

WAN = "delay=20ms jitter=5ms loss=1%"


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def _up_wan(state_dir: Path, *extra: str) -> AbstractContextManager[subprocess.Popen[str]]:
    return up("--sites", "a,b", "--wan", WAN, "--state-dir", str(state_dir), *extra)


def _wait_for_wan(proc: subprocess.Popen[str], state_dir: Path) -> dict[str, object]:
    wait_for_bench_file(proc, state_dir)
    info: dict[str, object] = json.loads((state_dir / "wan.json").read_text())
    return info


def _ours(info: dict[str, object]) -> set[str]:
    sites = info["sites"]
    assert isinstance(sites, list)
    return {str(site["netns"]) for site in sites} | {str(info["load_netns"])}


def test_sigterm_removes_the_namespaces_and_stops_every_process(tmp_path: Path) -> None:
    with _up_wan(tmp_path) as proc:
        info = _wait_for_wan(proc, tmp_path)
        namespaces = _ours(info)
        assert namespaces <= _namespaces()
        children = descendants(proc.pid)
        assert {"mosquitto", "nats-server", "redis-server"} <= {c.name() for c in children}
        output = sigterm(proc)
    assert proc.returncode == 0, output
    assert "WAN: delay=20ms jitter=5ms loss=1%" in output
    assert not namespaces & _namespaces()
    assert [child.name() for child in children if alive(child)] == []
    assert not (tmp_path / "wan.json").exists() and not (tmp_path / "bench.json").exists()


def test_a_killed_wan_bench_leaves_namespaces_the_next_one_removes(tmp_path: Path) -> None:
    with _up_wan(tmp_path, "--no-backend") as proc:
        info = _wait_for_wan(proc, tmp_path)
        children = descendants(proc.pid)
        proc.kill()  # SIGKILL: no handler runs
        proc.wait()
    _gone, left = psutil.wait_procs(children, timeout=10)
    assert [child.name() for child in left if alive(child)] == []  # pdeathsig
    namespaces = _ours(info)
    assert namespaces <= _namespaces()  # kernel objects: nobody was there to delete them
    removed = set(sweep_orphans())  # what the next WAN bench does first, under its lock
    assert namespaces <= removed
    assert not namespaces & _namespaces()


def test_a_failed_start_removes_what_it_made(tmp_path: Path) -> None:
    before = {ns for ns in _namespaces() if ns.startswith("aurora-wan")}
    owners_before = set(RUN_DIR.glob("block*.json"))
    # A setting the backend refuses: the services and the link are up when it fails.
    with _up_wan(tmp_path, "--env", "a:AURORA_HEARTBEAT_INTERVAL_SECONDS=-1") as proc:
        output, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0, output
    assert "backend-a did not start" in output
    assert {ns for ns in _namespaces() if ns.startswith("aurora-wan")} <= before
    assert set(RUN_DIR.glob("block*.json")) <= owners_before
