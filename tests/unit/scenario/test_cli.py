"""`aurora-bench scenario check|schema` and report writers: no servers needed."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import cli
from bench.errors import BenchError
from bench.scenario.expectations import Verdict
from bench.scenario.front import pytest_args
from bench.scenario.loader import LoadedScenario, parse_scenario
from bench.scenario.report import html_report, to_json, write_report
from bench.scenario.results import ExpectationResult, ScenarioResult, StepResult, failure_text
from bench.scenario.timeline import Event, EventKind

GOOD = "name: ok\nsteps:\n  - name: wait a bit\n    wait: 10ms\n"
BROKEN = "name: broken\nsteps:\n  - name: s\n    swipe: {device: d1, uid: 0455AF21, colour: red}\n"

SHIPPED = Path(__file__).resolve().parents[3] / "scenarios"


def test_check_reports_file_and_line_and_exit_code(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "broken.yaml").write_text(BROKEN)
    result = CliRunner().invoke(cli, ["scenario", "check", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{tmp_path / 'good.yaml'}: ok ('ok', 1 step)" in result.output
    assert f"{tmp_path / 'broken.yaml'}:4: unknown key 'colour' in steps.0.swipe" in result.output
    assert "Traceback" not in result.output


def test_check_passes_on_the_shipped_suite() -> None:
    result = CliRunner().invoke(cli, ["scenario", "check", str(SHIPPED)])
    assert result.exit_code == 0, result.output
    for name in ("badge_swipes", "firmware_drift", "telemetry_thresholds", "malformed_input",
                 "c2_alert", "federation_two_site", "demo"):  # fmt: skip
        assert f"{name}.yaml: ok" in result.output
    assert "fleets" not in result.output


def test_schema_is_json_schema() -> None:
    result = CliRunner().invoke(cli, ["scenario", "schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["title"] == "aurora-bench scenario"
    assert "steps" in schema["required"]


def test_run_is_pytest_with_the_plugin() -> None:
    args = pytest_args(
        [Path("scenarios")],
        keyword="badge and not slow",
        markers="integration",
        junit=Path("j.xml"),
        reports=[Path("r.html"), Path("r.json")],
        maxfail=2,
        state_dir=Path("st"),
        db="postgres",
    )
    assert args[0] == "scenarios"
    for expected in (
        ["-k", "badge and not slow"],
        ["-m", "integration"],
        ["--scenario-report", "r.html"],
        ["--scenario-report", "r.json"],
        ["--scenario-state-dir", "st"],
        ["--scenario-db", "postgres"],
        ["-p", "no:terminal"],
    ):
        assert any(args[i : i + 2] == expected for i in range(len(args))), expected
    assert "--junitxml=j.xml" in args and "--maxfail=2" in args
    assert "--scenarios-only" in args and "--continue-on-collection-errors" in args
    assert "--collect-only" in pytest_args([Path("s")], listing=True)


def _result(passed: bool) -> ScenarioResult:
    alert = Event(
        1.2,
        EventKind.ALERT,
        "redis",
        "a",
        "door-02",
        {"type": "access_denied", "severity": "medium"},
    )
    expectation = ExpectationResult(
        description="a `unlock` command received by door-02 within 1s",
        verdict=Verdict.PASSED if passed else Verdict.FAILED,
        expected="a `unlock` command received by door-02 within 1s",
        observed="door-02 unlock via node" if passed else "no command at all",
        at=1.05 if passed else 2.0,
        latency_s=0.05 if passed else None,
        context=[] if passed else [alert],
    )
    step = StepResult(
        "granted swipe <b>", "swipe", 1.0, 0.001, 2.0, "0455AF21", None, [expectation]
    )
    return ScenarioResult(
        "badges", "scenarios/badges.yaml", "2026-01-01T00:00:00+00:00", 2.5, [step], [alert]
    )


def test_failure_text_has_expected_observed_and_timeline() -> None:
    text = failure_text(_result(False))
    assert "expected: a `unlock` command received by door-02 within 1s" in text
    assert "observed: no command at all" in text
    assert "[a]alert door-02 access_denied (medium) via redis" in text
    assert text.index("access_denied") < text.index("<-- decided here")


def test_reports(tmp_path: Path) -> None:
    results = [_result(True), _result(False)]
    document = to_json(results)
    assert document["summary"] == {"total": 2, "passed": 1, "failed": 1, "duration_s": 5.0}
    page = html_report(results)
    assert (
        "granted swipe &lt;b&gt;" in page and "<b>" not in page.split("<body>")[1].split("<h1>")[0]
    )
    assert "50.0ms" in page
    for name in ("r.json", "r.html"):
        assert write_report(tmp_path / name, results).stat().st_size > 0
    assert json.loads((tmp_path / "r.json").read_text())["passed"] is False


def test_an_unwritable_report_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(BenchError, match=r"cannot write the report .*a-file/r\.json"):
        write_report(blocker / "r.json", [_result(True)])


def test_report_with_unknown_suffix_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "--report", str(tmp_path / "r.pdf"), str(tmp_path)])
    assert result.exit_code != 0
    assert "use a name ending in .html or .json" in str(result.exception) + result.output


def test_scenarios_sharing_sites_run_back_to_back() -> None:
    from bench.scenario.runner import group_by_bench

    def loaded(name: str, sites: str) -> LoadedScenario:
        text = f"name: {name}\nsites: {sites}\nsteps: [{{name: s}}]\n"
        return LoadedScenario(Path(f"{name}.yaml"), parse_scenario(text))

    items = [
        loaded("alpha", "{a: {}}"),
        loaded("beta", "{a: {}, b: {}}"),
        loaded("gamma", "{a: {}}"),
    ]
    grouped = group_by_bench(items, lambda item: item.scenario)
    assert [item.name for item in grouped] == ["alpha", "gamma", "beta"]
