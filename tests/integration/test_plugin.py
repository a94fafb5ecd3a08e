"""The pytest plugin, driven through pytester: scenario files become items with markers,
failures read expected vs observed, broken files are collection errors with file:line,
``--junitxml`` and ``-k`` come from pytest, and the Python fixtures work."""

import json
import xml.etree.ElementTree as ET

import pytest

from tests.integration.scenario_text import operator_unlock, ungranted_swipe

pytest_plugins = ["pytester"]

PASSES = operator_unlock("plugin passes", "pl-door-01", head="markers: [slow]\n")
FAILS = ungranted_swipe(
    "plugin fails",
    "pl-door-02",
    "0E0E0E0E",
    "command: {device: pl-door-02, verb: unlock, within: 500ms}",
)

PYTHON_TEST = """
async def test_fixtures(bench_site, fleet):
    import httpx
    nodes = await fleet([{"id": "pl-env-01", "board": "esp32s3-env"}])
    assert nodes.has("pl-env-01")
    async with bench_site.api_client() as http:
        assert (await http.get("/healthz")).status_code == 200
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(
        "[pytest]\n"
        "asyncio_mode = auto\n"
        "asyncio_default_fixture_loop_scope = session\n"
        "asyncio_default_test_loop_scope = session\n"
        "markers =\n    slow: takes a while\n"
    )
    scenarios = pytester.mkdir("scenarios")
    (scenarios / "passes.yaml").write_text(PASSES)
    # any folder, any depth: a YAML file with `steps:` is a scenario
    (pytester.path / "qa" / "doors").mkdir(parents=True)
    (pytester.path / "qa" / "doors" / "fails.yaml").write_text(FAILS)
    (pytester.path / "qa" / "compose.yml").write_text("services: {}\n")
    (scenarios / "broken.yaml").write_text("name: broken\nsteps:\n  - name: s\n    wait: soon\n")
    (scenarios / "fleets").mkdir()
    (scenarios / "fleets" / "spec.yaml").write_text("seed: 1\nboards: []\n")
    pytester.makepyfile(test_fixtures=PYTHON_TEST)
    return pytester


def test_scenarios_run_as_pytest_items(project: pytest.Pytester) -> None:
    junit, report = project.path / "junit.xml", project.path / "report.json"
    result = project.runpytest_subprocess(
        "--strict-markers", "--continue-on-collection-errors", f"--junitxml={junit}", "-p",
        "no:cacheprovider", "-rA", "--scenario-report", str(report), timeout=300,
    )  # fmt: skip
    result.assert_outcomes(passed=2, failed=1, errors=1)
    text = result.stdout.str()
    assert "broken.yaml:4: steps.0.wait: 'soon' is not a duration" in text
    assert "expected: an `unlock` command received by pl-door-02 within 500ms" in text
    assert "observed: no command at all" in text
    assert "access_denied" in text  # the timeline says why
    assert "Traceback" not in text
    assert "fleets" not in text and "compose.yml" not in text
    cases = {case.get("name"): case for case in ET.parse(junit).getroot().iter("testcase")}
    assert {"plugin_passes", "plugin_fails", "test_fixtures"} <= set(cases)
    properties = cases["plugin_passes"].find("properties")
    assert properties is not None and len(properties) == 1
    # the report comes from the plugin's session hook: every scenario, the broken file too
    document = json.loads(report.read_text())
    assert document["passed"] is False
    by_name = {s["name"]: s for s in document["scenarios"]}
    assert set(by_name) == {"plugin passes", "plugin fails", "broken"}
    assert "'soon' is not a duration" in by_name["broken"]["error"]
    assert by_name["plugin passes"]["steps"][0]["expectations"][0]["latency_s"] > 0


def test_markers_and_keyword_select_scenarios(project: pytest.Pytester) -> None:
    (project.path / "scenarios" / "broken.yaml").unlink()
    listed = project.runpytest_subprocess("--collect-only", "-q", "-m", "scenario and slow")
    assert "scenarios/passes.yaml::plugin_passes" in listed.stdout.str()
    assert "plugin_fails" not in listed.stdout.str()
    by_keyword = project.runpytest_subprocess("--collect-only", "-q", "-k", "fails")
    assert "qa/doors/fails.yaml::plugin_fails" in by_keyword.stdout.str()
    assert "plugin_passes" not in by_keyword.stdout.str()


def test_an_unregistered_marker_is_a_clear_collection_error(project: pytest.Pytester) -> None:
    (project.path / "scenarios" / "broken.yaml").write_text(
        "name: odd marker\nmarkers: [nightly]\nsteps:\n  - name: s\n    wait: 1ms\n"
    )
    result = project.runpytest_subprocess("--strict-markers", "--collect-only", "-q")
    assert "marker 'nightly' is not registered with pytest" in result.stdout.str()
