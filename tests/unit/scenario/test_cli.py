"""`aurora-bench scenario check|schema` and report writers: no servers needed."""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import cli
from bench.errors import BenchError
from bench.scenario.expectations import Verdict
from bench.scenario.report import html_report, junit_xml, to_json, write_junit, write_report
from bench.scenario.results import ExpectationResult, ScenarioResult, StepResult, failure_text
from bench.scenario.select import SelectionError, compile_selection
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


def test_selection_grammar() -> None:
    names = frozenset({"badge swipes", "badge_swipes", "integration"})
    assert compile_selection("")(names)
    assert compile_selection("badge")(names)
    assert compile_selection("BADGE and not federation")(names)
    assert not compile_selection("federation or c2")(names)
    assert compile_selection("(federation or swipes) and integration")(names)
    for bad in ("badge and", "(badge", "or badge", "badge )"):
        try:
            compile_selection(bad)
        except SelectionError as error:
            assert bad in str(error)
        else:
            raise AssertionError(bad)


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
    root = ET.fromstring(junit_xml(results))
    assert root.get("tests") == "2" and root.get("failures") == "1"
    failure = root.findall("testcase")[1].find("failure")
    assert failure is not None and "no command at all" in (failure.text or "")
    # Each timed expectation is a JUnit property, "<step>: <expectation>" = seconds.
    [timed] = root.findall("testcase")[0].iter("property")
    assert (
        timed.get("name") == "granted swipe <b>: a `unlock` command received by door-02 within 1s"
    )
    assert timed.get("value") == "0.050000"
    assert list(root.findall("testcase")[1].iter("property")) == []
    for name in ("r.json", "r.html", "r.xml"):
        assert write_report(tmp_path / name, results).stat().st_size > 0
    assert json.loads((tmp_path / "r.json").read_text())["passed"] is False


def test_an_unwritable_report_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for write in (write_report, write_junit):
        with pytest.raises(BenchError, match=r"cannot write the report .*a-file/r\.json"):
            write(blocker / "r.json", [_result(True)])


def test_report_with_unknown_suffix_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "--report", str(tmp_path / "r.pdf"), str(tmp_path)])
    assert result.exit_code != 0
    assert "use a name ending in .html or .json" in str(result.exception) + result.output


def test_select_scenarios_by_keyword_and_marker(tmp_path: Path) -> None:
    from bench.scenario.runner import group_by_bench, select_scenarios

    (tmp_path / "alpha.yaml").write_text(GOOD.replace("name: ok", "name: alpha one"))
    (tmp_path / "beta.yaml").write_text(
        "name: beta\nmarkers: [federation]\nsites: {a: {}, b: {}}\nsteps: [{name: s}]\n"
    )
    (tmp_path / "gamma.yaml").write_text(GOOD.replace("name: ok", "name: gamma"))
    (tmp_path / "broken.yaml").write_text(BROKEN)
    loaded, broken = select_scenarios([tmp_path], "not broken and (alpha or federation)")
    assert [item.name for item in loaded] == ["alpha one", "beta"]
    assert broken == []
    loaded, broken = select_scenarios([tmp_path], "")
    assert [r.name for r in broken] == ["broken"]
    assert "broken.yaml:4: unknown key 'colour'" in (broken[0].error or "")
    # scenarios sharing sites run back to back
    grouped = group_by_bench(loaded, lambda item: item.scenario)
    assert [item.name for item in grouped] == ["alpha one", "gamma", "beta"]
