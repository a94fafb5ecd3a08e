"""The loader: valid files load; every broken file gets `file:line: what is wrong`."""

import json
from pathlib import Path

import pytest

from bench.scenario.loader import (
    ScenarioLoadError,
    iter_scenario_files,
    load_scenario,
    parse_scenario,
)
from bench.scenario.schema import (
    ACTION_KEYS,
    EXPECTATION_KEYS,
    PublishAction,
    WaitAction,
    json_schema,
    parse_duration,
)

GOOD = """\
name: granted swipe
sites:
  a:
    settings: {unlock_duration_s: 1, telemetry_thresholds: {temperature_c: [-5, 30]}}
fleet:
  - {id: door-01, board: stm32f401-door}
grants:
  - {uid: 0455AF21, doors: [door-01]}
steps:
  - name: a granted badge opens the door
    swipe: {device: door-01, uid: 0455AF21}
    expect:
      - command: {device: door-01, verb: unlock, within: 500ms}
      - lock: {device: door-01, state: unlocked, within: 2s}
  - name: later
    at: 3
    wait: 1m
"""


def _error(text: str) -> ScenarioLoadError:
    with pytest.raises(ScenarioLoadError) as caught:
        parse_scenario(text, "s.yaml")
    return caught.value


def test_a_good_file_loads_with_durations_in_seconds() -> None:
    scenario = parse_scenario(GOOD)
    assert scenario.name == "granted swipe"
    step = scenario.steps[0]
    assert step.action_key == "swipe"
    assert step.expect[0].key == "command"
    assert step.expect[0].body.within == 0.5  # type: ignore[attr-defined]
    assert scenario.steps[1].action == WaitAction(60.0)
    assert scenario.steps[1].action_key == "wait"
    assert scenario.sites["a"].env() == {
        "AURORA_TELEMETRY_THRESHOLDS": '{"temperature_c": [-5, 30]}',
        "AURORA_UNLOCK_DURATION_S": "1",
    }


@pytest.mark.parametrize(
    ("needle", "replacement", "line", "message"),
    [
        ("board: stm32f401-door", "board: stm32f999", 6, "fleet.0.board: unknown board"),
        ("board: stm32f401-door", "board: door", 6, "'door' is now called stm32f401-door"),
        ("state: unlocked, ", "state: unlocked, colour: red, ", 14, "unknown key 'colour'"),
        ("within: 500ms", "within: soon", 13, "'soon' is not a duration"),
        ("verb: unlock", "verb: open", 13, "verb: Input should be 'unlock'"),
        (
            "uid: 0455AF21}\n    expect",
            "uid: ZZ}\n    expect",
            11,
            "swipe.uid: String should match",
        ),
        ("    wait: 1m", "    wait: 1m\n    drift: {device: door-01}", 15, "one action"),
        (
            "unlock_duration_s: 1",
            "unlock_duration: 1",
            4,
            "unknown backend setting 'unlock_duration'",
        ),
        ("unlock_duration_s: 1", "redis_url: x", 4, "owned by the bench"),
        ("{device: door-01, uid", "{device: door-02, uid", 11, "'door-02' is not one"),
        ("doors: [door-01]}", "doors: [door-01], site: b}", 8, "unknown site 'b'"),
        ("    at: 3\n", "    at: 3\n    after: 1\n", 15, "not both"),
        ("name: later", "name: ''", 15, "at least 1 character"),
    ],
)
def test_each_mistake_is_reported_at_its_line(
    needle: str, replacement: str, line: int, message: str
) -> None:
    assert needle in GOOD
    error = _error(GOOD.replace(needle, replacement, 1))
    assert any(p.line == line and message in p.message for p in error.problems), error.lines()
    assert str(error).startswith("s.yaml:")


def test_missing_key_points_at_its_parent() -> None:
    error = _error(GOOD.replace("name: a granted badge opens the door\n    ", "", 1))
    assert error.lines() == ["s.yaml:10: missing key 'name' in steps.0"]


def test_yaml_syntax_error_has_a_line() -> None:
    error = _error("name: x\nsteps:\n  - name: [unclosed\n")
    assert error.problems[0].line is not None
    assert "not valid YAML" in error.problems[0].message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("- a\n- b\n", "a scenario is a mapping"),
        ("name: x\nname: y\nsteps: []\n", "duplicate key 'name'"),
        ("name: x\nsteps: []\n", "at least 1 item"),
        ("name: x\nsites: {a: {}, b: {}, c: {}}\nsteps: [{name: s}]\n", "one or two sites"),
        ("name: x\nsites: {A: {}}\nsteps: [{name: s}]\n", "String should match pattern"),
        ("name: x\nsteps: [{name: s, expect: [{}]}]\n", "exactly one of"),
        ("name: x\nsteps: [{name: s, partition: {}}]\n", "needs two sites"),
        (
            "name: x\nsteps: [{name: s, expect: [{latency: "
            "{from: {event: badge}, to: {event: command}}}]}]\n",
            "at least one bound",
        ),
    ],
)
def test_file_level_mistakes(text: str, message: str) -> None:
    error = _error(text)
    assert any(message in p.message for p in error.problems), error.lines()


def test_unknown_top_level_key_names_the_key_line() -> None:
    error = _error(GOOD + "colour: blue\n")
    assert error.lines() == ["s.yaml:18: unknown key 'colour' in the top level"]


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ScenarioLoadError, match="no such file"):
        load_scenario(tmp_path / "nope.yaml")
    bad = tmp_path / "bin.yaml"
    bad.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ScenarioLoadError, match="cannot read"):
        load_scenario(bad)


def test_folders_are_searched_recursively_for_files_with_steps(tmp_path: Path) -> None:
    (tmp_path / "fleets").mkdir()
    (tmp_path / "fleets" / "f.yaml").write_text("seed: 1\nboards: []\n")
    (tmp_path / "b.yaml").write_text(GOOD)
    (tmp_path / "a.yml").write_text(GOOD)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "regression" / "door").mkdir(parents=True)
    (tmp_path / "regression" / "door" / "c.yaml").write_text(GOOD)
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "d.yaml").write_text(GOOD)
    found = [p.relative_to(tmp_path).as_posix() for p in iter_scenario_files([tmp_path])]
    assert found == ["a.yml", "b.yaml", "regression/door/c.yaml"]
    # a file named on the command line is read whatever it holds
    assert list(iter_scenario_files([tmp_path / "fleets" / "f.yaml"])) == [
        tmp_path / "fleets" / "f.yaml"
    ]


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [(2, 2.0), (0.5, 0.5), ("2s", 2.0), ("250ms", 0.25), ("1m", 60.0), (" 3 ", 3.0)],
)
def test_durations(raw: object, seconds: float) -> None:
    assert parse_duration(raw) == seconds


@pytest.mark.parametrize("raw", [-1, "fast", True, None, "1h"])
def test_bad_durations(raw: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(raw)


def test_publish_bodies() -> None:
    assert PublishAction(topic="t", json={"a": 1}).body() == b'{"a":1}'
    assert PublishAction(topic="t", hex="00ff").body() == b"\x00\xff"
    assert PublishAction(topic="t", payload="{", size=5).body() == b"{    "
    with pytest.raises(ValueError, match="one of payload"):
        PublishAction(topic="t", payload="x", hex="00")


def test_json_schema_names_every_action_and_expectation() -> None:
    schema = json_schema()
    text = json.dumps(schema)
    steps = schema["properties"]["steps"]["items"]
    variants = [schema["$defs"][ref["$ref"].rsplit("/", 1)[1]] for ref in steps["oneOf"]]
    step_keys = {key for variant in variants for key in variant["properties"]}
    assert set(ACTION_KEYS) <= step_keys
    assert all(variant["additionalProperties"] is False for variant in variants)
    for key in EXPECTATION_KEYS:
        assert f'"{key}"' in text
    assert schema["$defs"]["NoAlertExpect"]["properties"]["for"]
    assert schema["$defs"]["LockExpect"]["properties"]["for"]
    assert schema["additionalProperties"] is False


def test_a_device_is_named_device_everywhere_and_old_keys_get_a_hint() -> None:
    error = _error(
        GOOD.replace("lock: {device: door-01, state: unlocked,", "device: {id: door-01,", 1)
    )
    assert error.lines() == [
        "s.yaml:14: unknown key 'id' in steps.0.expect.1.device; write `device:` "
        "(one key names a device in every action and expectation)"
    ]
    publish = "name: x\nsteps:\n  - name: s\n    publish: {topic: t, as_device: d1}\n"
    assert "write `device:`" in _error(publish).lines()[0]


def test_a_grant_must_name_a_door_of_the_fleet() -> None:
    error = _error(GOOD.replace("doors: [door-01]", "doors: [door-01, door-9]", 1))
    assert error.lines() == [
        "s.yaml:8: grant for 'door-9', which is not a device of the fleet "
        "(fleet: door-01; `*` grants every door)"
    ]
    sensor = GOOD.replace(
        "board: stm32f401-door}", "board: stm32f401-door}\n  - {id: env-1, board: esp32s3-env}"
    )
    in_step = sensor + "  - name: more\n    grant: {uid: 0455AF22, doors: ['*', env-1]}\n"
    [problem] = _error(in_step).problems
    assert problem.line == 20 and "'env-1', a esp32s3-env" in problem.message


def test_node_options_are_checked_against_the_board_model() -> None:
    text = (
        "name: x\nfleet:\n  - {id: d1, board: esp32s3-env, options: {reading_interval_s: -1}}\n"
        "  - id: d2\n    board: stm32f401-door\n    options:\n      colour: red\n"
        "steps: [{name: s}]\n"
    )
    error = _error(text)
    assert error.lines() == [
        "s.yaml:3: d1: options.reading_interval_s: Input should be greater than 0",
        "s.yaml:7: d2: options.colour: Extra inputs are not permitted",
    ]
