"""Emulated fleet nodes in scenario files: what the loader accepts and refuses, and the
firmware's lock lines the adapter turns into lock events."""

from __future__ import annotations

import pytest

from bench.errors import ScenarioError
from bench.scenario.fleet_adapter import lock_line_state
from bench.scenario.loader import parse_scenario

HEAD = """
name: emu
sites: {a: {}}
fleet:
  - {id: emu-door-01, emulated: {board: stm32f405-door}}
"""


def problems(text: str) -> str:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "emu.yaml")
    return str(caught.value)


def test_an_emulated_door_takes_swipes_grants_and_lock_expectations() -> None:
    scenario = parse_scenario(
        HEAD
        + "grants: [{uid: 04A1B2C3, doors: [emu-door-01]}]\n"
        + "steps:\n  - name: swipe\n    swipe: {device: emu-door-01, uid: 04A1B2C3}\n"
        + "    expect: [{lock: {device: emu-door-01, state: unlocked, within: 3s}}]\n"
    )
    (node,) = scenario.fleet
    assert node.board is None
    assert node.emulated is not None
    assert node.emulated.board == "stm32f405-door"


def test_model_only_actions_are_refused_on_an_emulated_node() -> None:
    text = (
        HEAD + "steps:\n  - name: fault\n    fault: {device: emu-door-01, kind: sensor_failure}\n"
    )
    assert "runs real firmware under QEMU" in problems(text)


def test_a_node_is_a_board_or_emulated_never_both_nor_neither() -> None:
    both = HEAD.replace("emulated:", "board: stm32f401-door, emulated:") + "steps: []\n"
    assert "exactly one of `board` or `emulated`" in problems(both)
    neither = HEAD.replace(", emulated: {board: stm32f405-door}", "") + "steps: []\n"
    assert "exactly one of `board` or `emulated`" in problems(neither)
    with_options = HEAD.replace("}}", "}, options: {x: 1}}") + "steps: []\n"
    assert "takes no `port` or `options`" in problems(with_options)


@pytest.mark.parametrize(
    ("line", "state"),
    [
        ("17:00:05.218 [emu-door-01] lock: unlocked for 5 s (unlock)", "unlocked"),
        ("17:00:05.218 [emu-door-01] lock: lockdown (unlock ignored)", "lockdown"),
        ("lock: locked (duration over)", "locked"),
        ("17:00:05.218 [emu-door-01] measured boot: sha256 ab", None),
        ("17:00:05.218 [emu-door-01] clock: lockdown", None),
        ("17:00:05.218 [emu-door-01] lock: open", None),
    ],
)
def test_lock_lines(line: str, state: str | None) -> None:
    assert lock_line_state(line) == state
