"""The rules file: every problem reported as file:line: what is wrong; RE2 only."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.contract import Severity
from backend.sentinel.inspection import Action, Rules, RulesError, load_rules, parse_rules
from backend.sentinel.inspection.rules import DEFAULT_RULES_PATH


def problems(text: str) -> list[str]:
    with pytest.raises(RulesError) as caught:
        parse_rules(text, "rules.yaml")
    return caught.value.lines()


def test_empty_file_is_the_defaults() -> None:
    assert parse_rules("") == Rules()


def test_the_shipped_rules_file_loads() -> None:
    rules = load_rules(DEFAULT_RULES_PATH)
    assert rules.signatures, "the shipped file carries example signatures"


def test_a_signature_with_its_fields() -> None:
    rules = parse_rules(
        "signatures:\n  - id: rm\n    literal: 'rm -rf'\n    severity: critical\n    action: flag\n"
    )
    assert rules.signatures[0].severity is Severity.CRITICAL
    assert rules.signatures[0].action is Action.FLAG


def test_unknown_key_names_its_line() -> None:
    assert problems("signatures:\n  - id: a\n    literal: x\n    colour: red\n") == [
        "rules.yaml:4: signatures.0.colour: Extra inputs are not permitted"
    ]


def test_two_matchers_in_one_signature_are_refused() -> None:
    (line,) = problems("signatures:\n  - id: a\n    literal: x\n    regex: y\n")
    assert line.startswith("rules.yaml:2: signatures.0: ")
    assert "exactly one of `literal`, `regex`, `json`" in line


def test_backreference_is_refused_with_re2s_reason() -> None:
    (line,) = problems("signatures:\n  - id: a\n    regex: '(a)\\1'\n")
    assert line.startswith("rules.yaml:2:")
    assert "refused by RE2" in line


def test_catastrophic_regex_is_accepted_because_re2_runs_it_in_linear_time() -> None:
    rules = parse_rules("signatures:\n  - id: evil\n    regex: '(a+)+$'\n")
    assert rules.signatures[0].regex == "(a+)+$"


def test_bad_topic_filter() -> None:
    (line,) = problems("signatures:\n  - id: a\n    literal: x\n    topic: 'clients/#/alerts'\n")
    assert line.startswith("rules.yaml:4: signatures.0.topic:")


def test_duplicate_yaml_key_and_duplicate_signature_id() -> None:
    assert problems("limits: {}\nlimits: {}\n") == ["rules.yaml:2: key 'limits' appears twice"]
    (line,) = problems("signatures:\n  - {id: a, literal: x}\n  - {id: a, literal: y}\n")
    assert "signature id 'a' is used twice" in line


def test_not_yaml_and_not_a_mapping() -> None:
    assert problems("signatures: [\n")[0].startswith("rules.yaml:")
    assert problems("- 1\n") == ["rules.yaml:1: a rules file is a mapping"]


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(RulesError) as caught:
        load_rules(tmp_path / "missing.yaml")
    assert "cannot read" in str(caught.value)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_loads_or_fails_with_rules_error(text: str) -> None:
    try:
        parse_rules(text)
    except RulesError as error:
        assert error.lines()
