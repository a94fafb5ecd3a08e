"""The demo's narration: causes before effects, checks in words, door states explained."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from bench.scenario.loader import load_scenario
from bench.scenario.narration import Narrator, cause_text
from bench.scenario.results import ExpectationResult, StepResult
from bench.scenario.timeline import Event, EventKind
from bench.scenario.windows import Verdict

DEMO = Path(__file__).resolve().parents[3] / "scenarios" / "demo.yaml"


def narrator() -> tuple[Narrator, io.StringIO]:
    out = io.StringIO()
    return Narrator(Console(file=out, width=200, color_system=None)), out


def test_every_demo_action_is_told_in_words_not_as_its_yaml_key() -> None:
    for step in load_scenario(DEMO).scenario.steps:
        if step.action is not None and step.action_key is not None:
            assert cause_text(step.action, step.action_key) != step.action_key, step.name


def test_a_steps_cause_is_printed_before_any_of_its_effects() -> None:
    voice, out = narrator()
    step = next(s for s in load_scenario(DEMO).scenario.steps if s.action_key == "command")
    voice.step_started(step, 1, 1.0)
    # The action's own record arrives after its effects (it is written when the HTTP call
    # returns): the narration must not print it again, after them.
    voice.event(Event(1.02, EventKind.LOCK, "node", "a", "hq-door-lab", {"state": "lockdown"}))
    voice.event(Event(1.0, EventKind.ACTION, "runner", "a", "hq-door-lab", {"action": "command"}))
    lines = out.getvalue().splitlines()
    cause = next(i for i, line in enumerate(lines) if "operator sends lockdown" in line)
    effect = next(i for i, line in enumerate(lines) if "lockdown" in line and "lock " in line)
    assert cause < effect
    assert not any("action command" in line for line in lines)


def test_setup_actions_outside_steps_are_still_shown() -> None:
    voice, out = narrator()
    voice.event(Event(0.5, EventKind.ACTION, "runner", "a", None, {"action": "grant", "uid": "X"}))
    assert "setup: [a] action grant uid=X" in out.getvalue()


def test_a_door_that_closes_by_itself_is_said_to_have_timed_out() -> None:
    voice, out = narrator()

    def lock(t: float, state: str) -> None:
        voice.event(Event(t, EventKind.LOCK, "node", "a", "d1", {"state": state}))

    def command(t: float, verb: str) -> None:
        voice.event(Event(t, EventKind.COMMAND, "node", "a", "d1", {"verb": verb}))

    lock(0.0, "locked")
    command(1.0, "unlock")
    lock(1.0, "unlocked")
    lock(2.0, "locked")
    command(3.0, "unlock")
    lock(3.0, "unlocked")
    command(3.5, "lock")
    lock(3.5, "locked")
    lines = [line for line in out.getvalue().splitlines() if "lock d1" in line]
    assert lines[0].endswith("locked (as the door starts)")
    assert lines[2].endswith("locked again (its unlock period ran out)")
    assert lines[4].endswith("locked")  # the lock verb did it, not the timer
    assert "ran out" not in lines[4]


def test_each_check_is_printed_in_words_with_its_outcome() -> None:
    voice, out = narrator()
    result = StepResult("s", "swipe", 1.0)
    result.expectations = [
        ExpectationResult("door d1 unlocked within 1s", Verdict.PASSED, "", "", latency_s=0.025),
        ExpectationResult("no `unlock` command", Verdict.FAILED, "", "unlock at 1.2s"),
    ]
    voice.step_finished(result)
    text = out.getvalue()
    assert "✓ door d1 unlocked within 1s (25ms)" in text
    assert "✗ no `unlock` command" in text
    assert "observed unlock at 1.2s" in text
