"""The scenario loader under hostile files: every outcome is a scenario or a
ScenarioError whose every problem names a line that exists. Through the public
``parse_scenario`` only (the schema behind it changes; this contract does not)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from bench.errors import ScenarioError
from bench.scenario.loader import parse_scenario
from tests.fuzz.profile import fuzz

SHIPPED = sorted(Path(__file__).parents[2].joinpath("scenarios").glob("*.yaml"))
TEXTS = [path.read_text(encoding="utf-8") for path in SHIPPED]
YAML_BITS = [
    ":",
    "- ",
    "  ",
    "\n",
    "{",
    "}",
    "[",
    "]",
    "&a ",
    "*a",
    "!!python/object ",
    "'",
    '"',
    "#",
    "? ",
    "|",
    ">",
    "\t",
    "\x00",
    "~",
    "1e999",
    ".nan",
    "0x10",
    "yes",
]


def outcome(text: str) -> object:
    """The loader's result or its ScenarioError; anything else fails the test."""
    try:
        return parse_scenario(text, "fuzz.yaml")
    except ScenarioError as error:
        lines = text.count("\n") + 1
        for problem in getattr(error, "problems", []):
            assert problem.line is None or 1 <= problem.line <= lines, (problem, lines)
        assert str(error).startswith("fuzz.yaml")
        return error


def test_the_shipped_scenarios_load() -> None:
    assert SHIPPED
    for text in TEXTS:
        assert not isinstance(outcome(text), ScenarioError)


@fuzz(150)
@given(text=st.text(max_size=400) | st.lists(st.sampled_from(YAML_BITS), max_size=40).map("".join))
def test_arbitrary_text_is_a_scenario_or_a_located_error(text: str) -> None:
    outcome(text)


@fuzz(80)
@given(
    index=st.integers(min_value=0),
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.sampled_from(YAML_BITS) | st.text(max_size=3)),
        min_size=1,
        max_size=4,
    ),
)
def test_edited_shipped_scenarios_are_a_scenario_or_a_located_error(
    index: int, edits: list[tuple[int, str]]
) -> None:
    text = TEXTS[index % len(TEXTS)]
    for position, insert in edits:
        at = position % (len(text) + 1)
        text = text[:at] + insert + text[at + 1 :]
    outcome(text)


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n"
    for prev, name in zip("abcdef", "bcdefg", strict=True)
)  # 9^7 = 4,782,969 strings from 7 lines; each further line multiplies by 9


def test_deeply_nested_yaml_is_a_located_error() -> None:
    try:
        outcome("name: x\nsteps: " + "[" * 600 + "]" * 600)
    except RecursionError:
        # Re-raised short: pytest would spend seconds rendering 1,000 frames.
        raise AssertionError("RecursionError escaped the loader") from None


def test_an_alias_bomb_is_refused_without_expanding_it() -> None:
    # Refused before expansion: the loader's error names the aliases, not the schema.
    assert "alias" in str(outcome(ALIAS_BOMB))
