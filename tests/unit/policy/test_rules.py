"""Seed 004's rule model: its examples as golden vectors, and the loader's error messages."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from backend.policy.engine import PolicyEngine, bench_rules
from backend.policy.errors import InvalidRule
from backend.policy.rules import Subject, SubjectType, load_rules, parse_rules

R, W, S = 1, 2, 4
SEED_FILE = Path(__file__).parent / "data" / "celine.json"
ENGINE = PolicyEngine(bench_rules())


def user(name: str, *groups: str, scopes: tuple[str, ...] = ()) -> Subject:
    return Subject(SubjectType.USER, name, frozenset(groups), frozenset(scopes))


def service(name: str, *scopes: str, groups: tuple[str, ...] = ()) -> Subject:
    return Subject(SubjectType.SERVICE, name, frozenset(groups), frozenset(scopes))


ADMIN = user("alice", "admins")
VIEWER = user("victor", "viewers")
TWIN = service("svc-digital-twin", "mqtt.write")
PIPELINES = service("svc-pipelines", "mqtt.write")

# (who, topic, acc, allowed) — every example of seed 004 as it decides there.
GOLDEN = [
    # "admins": everything, including subscribing to '#'
    (ADMIN, "celine/digital-twin/events/pump/pump-001", W, True),
    (ADMIN, "celine/system/alerts/critical", S, True),
    (ADMIN, "#", S, True),
    (ADMIN, "aurora/sensors/stm32f401-door-03/status", W, True),
    # a service with mqtt.write publishes digital-twin events and state ...
    (TWIN, "celine/digital-twin/events/pump/pump-001", W, True),
    (TWIN, "celine/digital-twin/state/pump/pump-001", W, True),
    # ... but nothing else, and mqtt.write gives no subscribe
    (TWIN, "celine/digital-twin/commands/pump/pump-001", W, False),
    (TWIN, "celine/pipelines/status/etl-daily", W, False),
    (TWIN, "celine/digital-twin/events/#", S, False),
    (service("svc-digital-twin"), "celine/digital-twin/events/pump/pump-001", W, False),
    (user("mallory", scopes=("mqtt.write",)), "celine/digital-twin/events/p/1", W, False),
    # the client example: mqtt.read subscribes digital-twin events
    (service("svc-dash", "mqtt.read"), "celine/digital-twin/events/#", S, True),
    (service("svc-dash", "mqtt.read"), "celine/digital-twin/events/pump/1", R, True),
    (service("svc-dash", "mqtt.read"), "celine/digital-twin/events/pump/1", W, False),
    # viewers read telemetry readings ...
    (VIEWER, "celine/telemetry/meter/meter-001/readings", S, True),
    (VIEWER, "celine/telemetry/meter/meter-001/readings", R, True),
    (VIEWER, "celine/telemetry/+/+/readings", S, True),
    (VIEWER, "celine/telemetry/#", S, False),
    (VIEWER, "celine/telemetry/meter/meter-001/readings", W, False),
    (service("svc-viewer", groups=("viewers",)), "celine/telemetry/m/1/readings", S, False),
    # ... and may not subscribe to critical alerts: the deny beats the system/# allow
    (VIEWER, "celine/system/alerts/critical", S, False),
    (VIEWER, "celine/system/alerts/warning", S, True),
    (VIEWER, "celine/system/health/api", S, True),
    # svc-pipelines publishes pipeline status and events, no other service does
    (PIPELINES, "celine/pipelines/status/etl-daily", W, True),
    (PIPELINES, "celine/pipelines/events/etl-daily/started", W, True),
    (PIPELINES, "celine/pipelines/status/etl-daily/extra", W, False),
    (service("svc-other", "mqtt.write"), "celine/pipelines/status/etl-daily", W, False),
    (service("svc-pipelines"), "celine/pipelines/status/etl-daily", W, False),
    # token clients get none of the certificate identities' rules
    (
        service("stm32f401-door-03", "mqtt.write"),
        "aurora/sensors/stm32f401-door-03/status",
        W,
        False,
    ),
    (user("bench-probe", "editors"), "aurora/sensors/x/status", W, False),
]


@pytest.mark.parametrize(("who", "topic", "acc", "allowed"), GOLDEN)
def test_seed_examples_decide_as_the_seed_says(
    who: Subject, topic: str, acc: int, allowed: bool
) -> None:
    decision = ENGINE.check(who, f"{who.id}-1", topic, acc)
    assert decision.allowed is allowed, decision


def test_the_deny_names_its_rule() -> None:
    decision = ENGINE.check(VIEWER, "c", "celine/system/alerts/critical", S)
    assert "seed 004: deny specific topic" in decision.reason
    assert "denied to user 'victor' (groups: viewers)" in decision.reason


@pytest.mark.parametrize(
    ("who", "superuser"),
    [
        (ADMIN, True),
        (service("svc-admin", "mqtt.admin"), True),
        (VIEWER, False),
        (TWIN, False),
        (user("eve", "managers"), False),
    ],
)
def test_superusers_come_from_roles(who: Subject, superuser: bool) -> None:
    assert ENGINE.superuser(who).allowed is superuser


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
