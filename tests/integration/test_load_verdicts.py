"""No false pass: load and fleet runs against broken sites fail, say why, and mark JUnit failed.

Each test breaks a real site the bench started (the broker or Redis stopped, a locust
worker killed) and checks the run's verdict; each would pass if the matching run check of
``bench.load.verdict`` or ``bench.fleet.judge_fleet`` were removed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree as ET

import psutil
import pytest

from bench.cmd_load import LOCUSTFILE
from bench.site import RunningBench

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "bench"]
SHORT = ("--devices", "3", "--rate", "3", "--duration", "2", "--drain", "1")


@pytest.fixture
def site(bench_factory) -> RunningBench:
    """A site of its own (services only: these tests break it)."""
    bench: RunningBench = bench_factory(["a"], backend=False)
    return bench


def _load_command(state_dir: Path, *args: str) -> list[str]:
    return [*CLI, "load", "--state-dir", str(state_dir), "--boards", "esp32s3=1", *args]


def _load(state_dir: Path, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _load_command(state_dir, *args),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def _load_and_break(
    state_dir: Path,
    args: tuple[str, ...],
    ready: Callable[[str], bool],
    what: str,
    break_it: Callable[[subprocess.Popen[str]], None],
) -> tuple[int, str, str]:
    """Start a load run, wait for the progress line ``ready`` accepts (failing if the run
    ends before ``what``), break something, and return (exit code, stdout, stderr)."""
    process = subprocess.Popen(
        _load_command(state_dir, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        for line in process.stdout:
            lines.append(line)
            if ready(line):
                break
        else:
            pytest.fail(f"the run ended before {what}:\n" + "".join(lines))
        break_it(process)
        rest, err = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, "".join(lines) + rest, err


def _failed_cases(junit: Path) -> dict[str, str]:
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    return {
        str(case.get("name")): str(failure.get("message"))
        for case in suite.iter("testcase")
        if (failure := case.find("failure")) is not None
    }


def test_broker_and_redis_gone_fails_and_says_why(site: RunningBench, tmp_path: Path) -> None:
    site.stop_service("a", "mosquitto")
    site.stop_service("a", "redis")
    junit, html = tmp_path / "load.xml", tmp_path / "load.html"
    result = _load(
        site.state_dir, *SHORT, "--junit", str(junit), "--html", str(html), "--assert", "loss==0"
    )
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "PASS loss" not in out
    assert "FAIL devices connected: 0/3 devices connected" in out
    assert "FAIL messages sent: 0 messages sent" in out
    assert "FAIL loss: no message was sent" in out
    # The cause is on the console, not only in locust's log: Redis, grouped by reason,
    # and it ended the run at once rather than at the --run-time safety net.
    assert "stopping the run: redis" in out
    assert "FAIL workers healthy: redis" in out
    assert "cannot read the site's streams" in out
    failed = _failed_cases(junit)
    assert {"devices connected", "messages sent", "workers healthy", "loss==0"} <= set(failed)
    assert "0/3 devices connected" in failed["devices connected"]
    page = html.read_text()
    assert '<p class="verdict fail">FAIL</p>' in page


def test_broker_gone_reports_connect_errors_by_reason(site: RunningBench, tmp_path: Path) -> None:
    site.stop_service("a", "mosquitto")
    junit = tmp_path / "load.xml"
    result = _load(site.state_dir, *SHORT, "--junit", str(junit))
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    # One line per cause and reason, with the count and the first message.
    assert "connect ECONNREFUSED x3 (first: load-esp32s3-" in out
    assert "FAIL devices connected: 0/3" in out
    assert "0/3 devices connected" in _failed_cases(junit)["devices connected"]


def test_a_killed_worker_fails_the_run_at_once(site: RunningBench, tmp_path: Path) -> None:
    junit = tmp_path / "load.xml"

    def kill_a_worker(process: subprocess.Popen[str]) -> None:
        workers = [
            child
            for child in psutil.Process(process.pid).children(recursive=True)
            if child.ppid() != process.pid  # the master is our child; workers are its children
        ]
        assert len(workers) == 2, workers
        os.kill(workers[0].pid, signal.SIGKILL)

    code, out, err = _load_and_break(
        site.state_dir,
        ("--devices", "4", "--rate", "4", "--duration", "120", "--workers", "2",
         "--junit", str(junit)),
        lambda line: "connected 4" in line,
        "every device connected",
        kill_a_worker,
    )  # fmt: skip
    assert code == 1, out + err
    assert "stopping the run: worker" in out
    assert "FAIL workers healthy: worker stopped answering" in out
    assert "stopped answering" in _failed_cases(junit)["workers healthy"]


def _break_mid_run(site: RunningBench, junit: Path, service: str) -> str:
    """Run 3 devices for 20 s, stop ``service`` once they all sent; return the output."""
    code, out, err = _load_and_break(
        site.state_dir,
        ("--devices", "3", "--rate", "6", "--duration", "20", "--drain", "1",
         "--junit", str(junit)),
        lambda line: "connected 3  sent" in line and " sent 0 " not in line,
        "every device published",
        lambda _process: site.stop_service("a", service),
    )  # fmt: skip
    assert code == 1, out + err
    # Every device connected and sent: what broke later is what fails the run.
    assert "FAIL devices connected" not in out
    assert "FAIL messages sent" not in out
    return out


@pytest.mark.parametrize(
    ("service", "verdict", "why", "case"),
    [
        ("mosquitto", "FAIL no broker errors: ", "disconnect broker closed the connection",
         "no broker errors"),
        ("redis", "FAIL workers healthy: redis", "reading the streams at redis://",
         "workers healthy"),
    ],
    ids=["broker", "redis"],
)  # fmt: skip
def test_a_service_killed_mid_run_fails(
    site: RunningBench, tmp_path: Path, service: str, verdict: str, why: str, case: str
) -> None:
    """The verdict names what broke and why; JUnit fails that very case."""
    junit = tmp_path / "load.xml"
    out = _break_mid_run(site, junit, service)
    assert verdict in out
    assert why in out
    assert case in _failed_cases(junit)


def test_plain_locust_run_fails_ci_and_writes_csv(site: RunningBench, tmp_path: Path) -> None:
    site.stop_service("a", "mosquitto")
    prefix = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
         "--users", "2", "--spawn-rate", "2", "--run-time", "60s",
         "--aurora-state-dir", str(site.state_dir), "--aurora-boards", "esp32s3=1",
         "--aurora-publish-s", "1", "--csv", str(prefix)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL devices connected: 0/2 devices connected" in result.stderr
    # Every device failed at once: the run ended without waiting for --run-time.
    assert "all devices done" in result.stdout
    stats = Path(f"{prefix}_stats.csv").read_text()
    assert "connect" in stats


def test_fleet_against_a_dead_broker_fails(site: RunningBench, tmp_path: Path, capsys) -> None:
    from bench.cli import main

    site.stop_service("a", "mosquitto")
    spec = tmp_path / "tiny.yaml"
    spec.write_text(
        "seed: 1\nboards:\n  - {board: esp32s3-env, count: 3, id_pattern: 'itv-env-{n}'}\n"
    )
    with pytest.raises(SystemExit) as caught:
        main(["fleet", "--spec", str(spec), "--state-dir", str(site.state_dir),
              "--speed", "10", "--duration", "20"])  # fmt: skip
    assert caught.value.code == 1
    out = capsys.readouterr().out
    assert "FAIL 0/3 devices connected: connect " in out
    assert "x3 (first: itv-env-" in out
    assert "FAIL 0 messages sent: no device connected" in out
