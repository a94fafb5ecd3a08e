"""Fuzzing the rules-file loader: any input is a RuleSet or an InvalidRule naming the file.

Bounded (``max_examples``) so it runs in the unit tier; the documents are valid rules files
with one part replaced by arbitrary JSON, plus arbitrary bytes.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.policy.engine import PolicyEngine
from backend.policy.errors import InvalidRule
from backend.policy.rules import RuleSet, Subject, SubjectType, parse_rules

SOURCE = "fuzz.json"
VALID: dict[str, Any] = {
    "celine": {
        "mqtt": {
            "acl": {
                "rules": [
                    {
                        "subjects": {"types": ["user"], "groups": ["viewers"]},
                        "topics": ["celine/telemetry/+/+/readings"],
                        "actions": ["subscribe", "read"],
                        "effect": "allow",
                    },
                    {
                        "subjects": {"groups": ["viewers"]},
                        "topics": ["celine/system/alerts/critical"],
                        "actions": ["subscribe"],
                        "effect": "deny",
                    },
                ]
            }
        },
        "roles": {
            "group_permissions": {"viewers": ["subscribe", "read"]},
            "scope_permissions": {"mqtt.write": ["publish"]},
        },
    }
}
# Where a mutation lands: a path of keys/indexes into VALID.
PATHS: list[tuple[str | int, ...]] = [
    (),
    ("celine",),
    ("celine", "mqtt"),
    ("celine", "mqtt", "acl"),
    ("celine", "mqtt", "acl", "rules"),
    ("celine", "mqtt", "acl", "rules", 0),
    ("celine", "mqtt", "acl", "rules", 0, "subjects"),
    ("celine", "mqtt", "acl", "rules", 0, "subjects", "types"),
    ("celine", "mqtt", "acl", "rules", 0, "topics"),
    ("celine", "mqtt", "acl", "rules", 0, "topics", 0),
    ("celine", "mqtt", "acl", "rules", 1, "actions"),
    ("celine", "mqtt", "acl", "rules", 1, "effect"),
    ("celine", "roles"),
    ("celine", "roles", "group_permissions"),
    ("celine", "roles", "group_permissions", "viewers"),
    ("celine", "roles", "scope_permissions", "mqtt.write", 0),
]
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["#", "+", "a/#", "*", "publish", "user", "deny", "superuser", ""]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)


def mutate(path: tuple[str | int, ...], value: object) -> bytes:
    document: Any = copy.deepcopy(VALID)
    if not path:
        return json.dumps(value).encode()
    target = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return json.dumps(document).encode()


def _load(raw: bytes) -> RuleSet | None:
    try:
        rule_set = parse_rules(raw, SOURCE)
    except InvalidRule as error:
        assert str(error).startswith(f"{SOURCE}: $"), error
        return None
    # A file that loads must also decide without raising.
    engine = PolicyEngine(rule_set)
    who = Subject(SubjectType.USER, "u", frozenset({"viewers"}), frozenset({"mqtt.write"}))
    for acc in (1, 2, 4):
        engine.check(who, "c", "celine/telemetry/m/1/readings", acc)
    engine.superuser(who)
    return rule_set


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PATHS), JSON)
def test_a_mutated_rules_file_loads_or_says_where(
    path: tuple[str | int, ...], value: object
) -> None:
    _load(mutate(path, value))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_loader(raw: bytes) -> None:
    _load(raw)


def test_the_unmutated_document_loads() -> None:
    assert _load(json.dumps(VALID).encode()) is not None
