"""Seed 004's rule model: the loader and its error messages (decisions are in test_engine)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from backend.policy.engine import PolicyEngine
from backend.policy.errors import InvalidRule
from backend.policy.rules import Subject, SubjectType, load_rules, parse_rules

W = 2
SEED_FILE = Path(__file__).parent / "data" / "celine.json"
ADMIN = Subject(SubjectType.USER, "alice", frozenset({"admins"}))
TWIN = Subject(SubjectType.SERVICE, "svc-digital-twin", scopes=frozenset({"mqtt.write"}))


def test_the_seeds_own_file_loads_and_decides() -> None:
    engine = PolicyEngine(load_rules(SEED_FILE))
    assert len(engine.rule_set.rules) == 2
    assert engine.check(ADMIN, "c", "celine/anything", W).allowed
    assert engine.check(TWIN, "c", "celine/digital-twin/events/pump/1", W).allowed
    assert not engine.check(TWIN, "c", "celine/digital-twin/state/pump/1", W).allowed
    assert engine.superuser(ADMIN).allowed


def _doc(rules: object, roles: object = None) -> str:
    body: dict[str, object] = {"mqtt": {"acl": {"rules": rules}}}
    if roles is not None:
        body["roles"] = roles
    return json.dumps({"celine": body})


GOOD_RULE = {"subjects": {"groups": ["admins"]}, "topics": ["#"], "actions": "*"}

BAD_FILES = [
    ("{", "$", "not valid JSON"),
    ("[]", "$", "one namespace key"),
    ('{"a": {}, "b": {}}', "$", "one namespace key"),
    ('{"celine": []}', "$.celine", "must be an object, got list"),
    ('{"celine": {"mqtt": {}, "extra": 1}}', "$.celine", "unknown key 'extra'"),
    ('{"celine": {"mqtt": {"acl": {}}}}', "$.celine.mqtt.acl.rules", "must be a list"),
    (_doc([{"topics": ["#"], "actions": "*"}]), "$.celine.mqtt.acl.rules[0]", "missing 'subjects'"),
    (
        _doc([GOOD_RULE, {**GOOD_RULE, "subjects": {}}]),
        "$.celine.mqtt.acl.rules[1].subjects",
        "names no criterion",
    ),
    (
        _doc([{**GOOD_RULE, "subjects": {"types": ["robot"]}}]),
        "$.celine.mqtt.acl.rules[0].subjects.types[0]",
        "unknown subject type 'robot'",
    ),
    (
        _doc([{**GOOD_RULE, "subjects": {"group": ["x"]}}]),
        "$.celine.mqtt.acl.rules[0].subjects",
        "unknown key 'group'",
    ),
    (
        _doc([{**GOOD_RULE, "subjects": {"ids": "svc"}}]),
        "$.celine.mqtt.acl.rules[0].subjects.ids",
        "must be a non-empty list of strings, got str",
    ),
    (
        _doc([{**GOOD_RULE, "topics": ["a/#/b"]}]),
        "$.celine.mqtt.acl.rules[0].topics[0]",
        "'#' must be a whole level",
    ),
    (
        _doc([{**GOOD_RULE, "topics": ["a", ""]}]),
        "$.celine.mqtt.acl.rules[0].topics[1]",
        "must be a non-empty string",
    ),
    (
        _doc([{**GOOD_RULE, "actions": ["write"]}]),
        "$.celine.mqtt.acl.rules[0].actions[0]",
        "unknown action 'write'",
    ),
    (
        _doc([{**GOOD_RULE, "effect": "maybe"}]),
        "$.celine.mqtt.acl.rules[0].effect",
        "must be 'allow' or 'deny'",
    ),
    (
        _doc([GOOD_RULE], {"group_permissions": {"viewers": ["watch"]}}),
        "$.celine.roles.group_permissions.viewers[0]",
        "unknown permission 'watch'",
    ),
    (
        _doc([GOOD_RULE], {"scope_permissions": {"mqtt.read": "read"}}),
        "$.celine.roles.scope_permissions.mqtt.read",
        "must be a list of permissions",
    ),
    (
        _doc([GOOD_RULE], {"type_permissions": {"robot": ["read"]}}),
        "$.celine.roles.type_permissions.robot",
        "unknown subject type",
    ),
]


@pytest.mark.parametrize(("text", "path", "problem"), BAD_FILES)
def test_a_bad_rules_file_names_file_path_and_problem(
    tmp_path: Path, text: str, path: str, problem: str
) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(text)
    with pytest.raises(InvalidRule) as raised:
        load_rules(rules)
    message = str(raised.value)
    assert message.startswith(f"{rules}: {path}: "), message
    assert problem in message


def test_a_missing_rules_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidRule, match=re.escape(f"{tmp_path / 'x.json'}: cannot read")):
        load_rules(tmp_path / "x.json")


def test_actions_star_and_default_effect() -> None:
    rule_set = parse_rules(_doc([{"subjects": {"ids": ["a"]}, "topics": ["x"], "actions": ["*"]}]))
    (rule,) = rule_set.rules
    assert {action.value for action in rule.actions} == {"subscribe", "read", "publish"}
    assert rule.effect.value == "allow"
