"""The ``wan`` action and the ``wan:`` setting of scenario files (issue 17). Pure."""

from __future__ import annotations

import json

import pytest

from bench.errors import ScenarioError
from bench.scenario.actions import ACTIONS
from bench.scenario.loader import parse_scenario
from bench.scenario.wan_action import WanAction

HEAD = "name: wan\nsites: {a: {}, b: {}}\n"


def test_a_scenario_across_a_wan_cuts_and_restores_the_link() -> None:
    scenario = parse_scenario(
        HEAD + 'wan: "delay=50ms loss=1%"\nsteps:\n'
        "  - {name: cut, wan: {cut: true}}\n"
        "  - {name: back, wan: {restore: true}}\n"
        '  - {name: worse, wan: {conditions: "delay=200ms loss=5%"}}\n'
    )
    assert ACTIONS["wan"] is WanAction
    actions = [step.action for step in scenario.steps]
    assert actions == [
        WanAction(cut=True),
        WanAction(restore=True),
        WanAction(conditions="delay=200ms loss=5%"),
    ]
    # A WAN scenario does not share a bench with the same sites on loopback.
    plain = parse_scenario(HEAD + "steps:\n  - {name: w, wait: 1s}\n")
    assert scenario.bench_key() != plain.bench_key()
    assert json.loads(scenario.bench_key())["wan"] == "delay=50ms loss=1%"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("steps:\n  - {name: x, wan: {cut: true, restore: true}}\n", "exactly one of"),
        ("steps:\n  - {name: x, wan: {}}\n", "exactly one of"),
        ("steps:\n  - {name: x, wan: {conditions: delay=fast}}\n", "cannot read"),
        ('wan: "delay=5ms jitter=9ms"\nsteps:\n  - {name: x, wait: 1s}\n', "exceeds the delay"),
    ],
)
def test_a_wrong_wan_says_what_and_where(text: str, says: str) -> None:
    with pytest.raises(ScenarioError, match=says):
        parse_scenario(HEAD + text)


def test_a_wan_joins_two_sites() -> None:
    with pytest.raises(ScenarioError, match="joins two sites"):
        parse_scenario(
            'name: x\nsites: {a: {}}\nwan: "delay=5ms"\nsteps:\n  - {name: x, wait: 1s}\n'
        )
