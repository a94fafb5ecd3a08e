"""Scenarios against a real site: they pass when the backend behaves and FAIL when it does
not, with expected vs observed and the timeline; the CLI runs folders and writes reports.

One bench (site ``a``) is shared by the runner tests here through a :class:`BenchPool`,
exactly as ``aurora-bench run`` and the pytest plugin share it.
"""

import asyncio
import json
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from bench.scenario.loader import LoadedScenario, parse_scenario
from bench.scenario.results import ScenarioResult, failure_text
from bench.scenario.runner import BenchPool, run_scenario
from bench.site import RunningBench
from tests.integration.scenario_text import SITE, door_scenario, operator_unlock, ungranted_swipe


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BenchPool]:
    with closing(BenchPool(tmp_path_factory.mktemp("scenario-benches"))) as pool:
        yield pool


def play(pool: BenchPool, text: str, name: str = "inline.yaml") -> ScenarioResult:
    loaded = LoadedScenario(Path(name), parse_scenario(text, name))
    bench: RunningBench = pool.acquire(loaded.scenario)
    return asyncio.run(run_scenario(loaded, bench))


def test_an_unlock_expected_for_a_badge_without_grant_fails(pool: BenchPool) -> None:
    steps = """
  - name: a badge nobody granted
    swipe: {device: it-door-01, uid: 0B0B0B0B}
    expect:
      - command: {device: it-door-01, verb: unlock, within: 1s}
      - lock: {device: it-door-01, state: unlocked, within: 1s}
"""
    result = play(pool, door_scenario("wrong expectation", "it-door-01", steps))
    assert not result.passed
    [(step, failed), *rest] = result.failures()
    assert step.name == "a badge nobody granted"
    assert failed is not None
    assert failed.observed == "no command at all"
    assert rest[0][1] is not None and "locked" in rest[0][1].observed
    text = failure_text(result)
    assert "expected: an `unlock` command received by it-door-01 within 1s" in text
    # The timeline shows why: the backend denied the badge and alerted instead.
    assert "[a]alert it-door-01 access_denied (medium)" in text
    assert "[a]mqtt it-door-01 badge_event" in text


def test_the_same_swipe_with_a_grant_passes_with_latencies(pool: BenchPool) -> None:
    steps = """
  - name: a granted badge
    swipe: {device: it-door-02, uid: 0B0B0B0C}
    expect:
      - command: {device: it-door-02, verb: unlock, within: 1s}
      - lock: {device: it-door-02, state: unlocked, within: 1s}
      - no_alert: {device: it-door-02, for: 300ms}
"""
    result = play(pool, door_scenario("right expectation", "it-door-02", steps, grant="0B0B0B0C"))
    assert result.passed, failure_text(result)
    latencies = [e.latency_s for e in result.steps[0].expectations]
    assert latencies[0] is not None and 0 < latencies[0] < 1
    kinds = {event.kind.value for event in result.events}
    assert {"mqtt", "command", "lock", "audit", "device", "step"} <= kinds


def test_a_stopped_backend_fails_the_scenario_and_the_bench_is_restored(pool: BenchPool) -> None:
    steps = """
  - name: the backend goes away
    stop: {site: a, service: backend}
  - name: nobody answers the badge
    swipe: {device: it-door-03, uid: 0B0B0B0D}
    expect:
      - command: {device: it-door-03, verb: unlock, within: 1s}
"""
    broken = play(pool, door_scenario("backend down", "it-door-03", steps, grant="0B0B0B0D"))
    assert not broken.passed
    assert broken.failures()[0][1] is not None
    # Cleanup restarted the backend: the next scenario on the shared bench works.
    steps = """
  - name: a granted badge
    swipe: {device: it-door-04, uid: 0B0B0B0E}
    expect:
      - lock: {device: it-door-04, state: unlocked, within: 2s}
"""
    again = play(pool, door_scenario("backend back", "it-door-04", steps, grant="0B0B0B0E"))
    assert again.passed, failure_text(again)
    assert pool.started == 1


def test_an_action_that_cannot_be_done_fails_its_step(pool: BenchPool) -> None:
    result = play(
        pool,
        f"""name: no grant to revoke
{SITE}steps:
  - name: revoke what was never granted
    revoke: {{uid: 0C0C0C0C}}
  - name: never reached
    wait: 1ms
""",
    )
    assert not result.passed
    assert result.steps[0].error == "no grant of uid 0C0C0C0C at site a to revoke"
    assert len(result.steps) == 1


PASSING = operator_unlock("passes", "cli-door-01")
FAILING = ungranted_swipe(
    "fails",
    "cli-door-02",
    "0D0D0D0D",
    "lock: {device: cli-door-02, state: unlocked, within: 500ms}",
)


def test_cli_runs_a_folder_writes_reports_and_exits_nonzero_on_failure(tmp_path: Path) -> None:
    folder = tmp_path / "suite"
    (folder / "nested" / "deeper").mkdir(parents=True)
    (folder / "pass.yaml").write_text(PASSING)
    # found however deep it is and whatever its folder is called
    (folder / "nested" / "deeper" / "fail.yaml").write_text(FAILING)
    (folder / "broken.yaml").write_text("name: broken\nsteps:\n  - name: s\n    wait: soon\n")
    (folder / "nested" / "fleet.yaml").write_text("seed: 1\nboards: []\n")  # not a scenario
    junit, html, report = tmp_path / "j.xml", tmp_path / "r.html", tmp_path / "r.json"
    command = [
        sys.executable, "-m", "bench", "run", str(folder), "--junit", str(junit),
        "--report", str(html), "--report", str(report), "--state-dir", str(tmp_path / "state"),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output
    assert f"{folder / 'broken.yaml'}:4: steps.0.wait: 'soon' is not a duration" in output
    assert "1 passed, 2 failed" in output
    assert "fleet.yaml" not in output
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("name") == "aurora-bench scenarios"
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert {"passes", "fails"} <= set(cases) and len(cases) == 3
    assert cases["passes"].find("failure") is None
    assert cases["fails"].find("failure") is not None
    [broken] = [case for name, case in cases.items() if name not in {"passes", "fails"}]
    error = broken.find("error")
    assert error is not None and "'soon' is not a duration" in (error.text or "")
    document = json.loads(report.read_text())
    assert document["summary"] == {**document["summary"], "total": 3, "passed": 1, "failed": 2}
    assert "an operator unlock" in html.read_text()
    # -k that selects nothing is a clear error, not a silent success.
    nothing = subprocess.run(
        [*command[:4], str(folder / "pass.yaml"), "-k", "no_such_scenario"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert nothing.returncode == 2
    assert "no scenario matched -k 'no_such_scenario'" in nothing.stderr
    # --list names what would run, and runs nothing; a broken file still shows.
    listed = subprocess.run(
        [*command[:5], "--list", "-k", "pass or fail"], capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert listed.returncode == 1, listed.stdout + listed.stderr
    assert f"{folder / 'pass.yaml'}: passes" in listed.stdout
    assert "broken.yaml:4:" in listed.stdout
    assert "2 scenario(s)" in listed.stdout and "▶" not in listed.stdout


def test_cli_stops_at_the_first_failure_with_x(tmp_path: Path) -> None:
    folder = tmp_path / "suite"
    folder.mkdir()
    (folder / "a_fail.yaml").write_text(FAILING)
    (folder / "b_pass.yaml").write_text(PASSING)
    junit = tmp_path / "j.xml"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "run", str(folder), "-x", "--junit", str(junit),
         "--state-dir", str(tmp_path / "state")],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "0 passed, 1 failed" in done.stdout
    names = [case.get("name") for case in ET.parse(junit).getroot().iter("testcase")]
    assert names == ["fails"]


def test_ctrl_c_leaves_a_partial_report_and_junit(tmp_path: Path) -> None:
    folder = tmp_path / "suite"
    folder.mkdir()
    (folder / "a_pass.yaml").write_text(PASSING)
    steps = """
  - name: an unlock, noted
    command: {device: cli-door-03, verb: unlock}
    expect:
      - lock: {device: cli-door-03, state: unlocked, within: 2s}
  - name: a long wait the user gives up on
    wait: 10m
"""
    (folder / "b_long.yaml").write_text(door_scenario("long", "cli-door-03", steps))
    junit, report = tmp_path / "j.xml", tmp_path / "r.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "run", str(folder), "--junit", str(junit),
         "--report", str(report), "--state-dir", str(tmp_path / "state")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        # A test runner started in the background ignores SIGINT, and its children with it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )  # fmt: skip
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "an unlock, noted" in line:  # the long scenario is in its wait now
            break
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    output = "".join(seen) + rest
    assert proc.returncode == 130, output
    assert "interrupted" in output
    document = json.loads(report.read_text())
    by_name = {s["name"]: s for s in document["scenarios"]}
    assert by_name["passes"]["passed"] is True
    assert by_name["long"]["passed"] is False
    assert by_name["long"]["error"] == "interrupted before it finished"
    assert [step["name"] for step in by_name["long"]["steps"]] == ["an unlock, noted"]
    names = [case.get("name") for case in ET.parse(junit).getroot().iter("testcase")]
    assert "passes" in names


def test_a_board_by_serial_port_takes_part_next_to_simulated_nodes(pool: BenchPool) -> None:
    """A virtual board on a PTY stands in for a real one: the scenario bridges its port."""
    bench = pool.acquire(parse_scenario(f"name: x\n{SITE}steps: [{{name: s}}]\n"))
    board = subprocess.Popen(
        [sys.executable, "-m", "bench", "virtual-board", "--board", "stm32f401-door", "--id",
         "it-board-01", "--state-dir", str(bench.state_dir), "--heartbeat-s", "1"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert board.stdout is not None
        link = ""
        for line in board.stdout:
            if line.startswith("link "):
                link = line.removeprefix("link ").strip()
                break
        assert link, "the virtual board did not print its PTY"
        result = play(
            pool,
            f"""name: real board
{SITE}fleet:
  - {{id: it-board-01, board: stm32f401-door, port: {link}}}
  - {{id: it-door-05, board: stm32f401-door}}
steps:
  - name: the board registered through the bridge
    expect:
      - device: {{device: it-board-01, trust: trusted, within: 5s}}
  - name: an operator unlock reaches the board down its serial line
    command: {{device: it-board-01, verb: unlock}}
    expect:
      - command: {{device: it-board-01, verb: unlock, within: 2s}}
  - name: the simulated door next to it still works
    command: {{device: it-door-05, verb: unlock}}
    expect:
      - lock: {{device: it-door-05, state: unlocked, within: 2s}}
""",
        )
        assert result.passed, failure_text(result)
        # The bridge wrote the command down the serial line, and said so in the timeline.
        board_lines = [str(e.get("text")) for e in result.events if e.source == "board"]
        assert any("<- command" in line and "unlock" in line for line in board_lines)
    finally:
        board.terminate()
        board.wait(timeout=10)
