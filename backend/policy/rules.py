"""The rule model of seed 004 and its loader (no I/O but reading the one file).

A rules file is shaped like the seed's ``policies/data/celine.json``::

    {"<namespace>": {
       "mqtt": {"acl": {"rules": [
          {"subjects": {"types": ["user"], "groups": ["viewers"]},
           "topics": ["celine/telemetry/+/+/readings"],
           "actions": ["subscribe", "read"],
           "effect": "allow"}]}},
       "roles": {"group_permissions": {"viewers": ["subscribe", "read"]},
                 "scope_permissions": {"mqtt.write": ["publish"]},
                 "type_permissions": {"device": ["subscribe", "read", "publish"]}}}}

* ``subjects``: every field given must match (a field matches when the subject has one of
  its values); at least one field. Types are ``user`` and ``service`` (JWT clients) and
  ``device``, ``backend``, ``probe`` (certificate identities, which no token can claim).
* ``topics``: MQTT filters with ``+`` and ``#``; ``%u`` / ``%c`` stand for the subject's
  id / the MQTT client id (Mosquitto's pattern syntax) and only ever take a value that is a
  valid device id, so an id carrying ``+``, ``#`` or ``/`` cannot widen a rule.
* ``actions``: ``subscribe``, ``read``, ``publish``, or ``"*"`` for all three.
* ``effect``: ``allow`` (the default) or ``deny``; a matching deny wins.
* ``roles``: what a subject may do at all. A check is allowed only if the subject holds the
  action through its groups, scopes or type *and* an allow rule matches (the seed's
  "has capability for action" and "matches an ACL rule"); ``superuser`` in those
  permissions answers ``/mqtt/superuser``. ``type_permissions`` is the bench's addition for
  certificate identities, which carry no groups or scopes.

Errors name the file, the JSON path and what is wrong (:class:`InvalidRule`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from backend.policy.errors import InvalidRule
from backend.policy.topics import topic_filter_problem


class Action(StrEnum):
    """What a rule permits; Mosquitto's acc 1 = read, 2 = publish, 4 = subscribe."""

    SUBSCRIBE = "subscribe"
    READ = "read"
    PUBLISH = "publish"


#: The permission that answers ``/mqtt/superuser`` (roles only, never a rule action).
SUPERUSER = "superuser"
PERMISSIONS = frozenset({*(action.value for action in Action), SUPERUSER})
ALL_ACTIONS = frozenset(Action)


class Effect(StrEnum):
    """What a matching rule decides."""

    ALLOW = "allow"
    DENY = "deny"


class SubjectType(StrEnum):
    """Who can ask: token clients (user, service) and certificate identities."""

    USER = "user"
    SERVICE = "service"
    DEVICE = "device"
    BACKEND = "backend"
    PROBE = "probe"


#: Types a JWT may carry; the others are proved by a client certificate only.
TOKEN_TYPES = frozenset({SubjectType.USER, SubjectType.SERVICE})


@dataclass(frozen=True, slots=True)
class Subject:
    """The requester: from a validated JWT or from a certificate identity."""

    type: SubjectType
    id: str
    groups: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()

    def describe(self) -> str:
        """``service 'svc-x' (groups: a; scopes: b)`` for decision reasons."""
        extra = []
        if self.groups:
            extra.append("groups: " + ", ".join(sorted(self.groups)))
        if self.scopes:
            extra.append("scopes: " + ", ".join(sorted(self.scopes)))
        tail = f" ({'; '.join(extra)})" if extra else ""
        return f"{self.type.value} {self.id!r}{tail}"


@dataclass(frozen=True, slots=True)
class SubjectSelector:
    """``subjects`` of a rule: ``None`` means the field is not constrained."""

    types: frozenset[str] | None = None
    ids: frozenset[str] | None = None
    groups: frozenset[str] | None = None
    scopes: frozenset[str] | None = None

    def matches(self, subject: Subject) -> bool:
        """Every constrained field shares a value with the subject."""
        return (
            (self.types is None or subject.type.value in self.types)
            and (self.ids is None or subject.id in self.ids)
            and (self.groups is None or not self.groups.isdisjoint(subject.groups))
            and (self.scopes is None or not self.scopes.isdisjoint(subject.scopes))
        )


@dataclass(frozen=True, slots=True)
class Rule:
    """One ACL rule; ``name`` is where it came from (``file: $.path.rules[3]``)."""

    subjects: SubjectSelector
    topics: tuple[str, ...]
    actions: frozenset[Action]
    effect: Effect = Effect.ALLOW
    name: str = ""
    levels: tuple[tuple[str, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", tuple(tuple(t.split("/")) for t in self.topics))


@dataclass(frozen=True, slots=True)
class Roles:
    """``roles``: permissions by group, by scope and (bench addition) by subject type."""

    group_permissions: Mapping[str, frozenset[str]] = field(default_factory=dict)
    scope_permissions: Mapping[str, frozenset[str]] = field(default_factory=dict)
    type_permissions: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def permissions(self, subject: Subject) -> frozenset[str]:
        """Everything the subject holds through its type, groups and scopes."""
        held: set[str] = set(self.type_permissions.get(subject.type.value, ()))
        for group in subject.groups:
            held.update(self.group_permissions.get(group, ()))
        for scope in subject.scopes:
            held.update(self.scope_permissions.get(scope, ()))
        return frozenset(held)


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A loaded rules file."""

    rules: tuple[Rule, ...]
    roles: Roles
    source: str = "<rules>"


# -- loading -----------------------------------------------------------------------------

_SUBJECT_FIELDS = ("types", "ids", "groups", "scopes")
_RULE_FIELDS = frozenset({"subjects", "topics", "actions", "effect", "description"})
_ROLE_FIELDS = ("group_permissions", "scope_permissions", "type_permissions")
_MAX_RULES = 10_000


class _Where:
    """The file and JSON path an error is about."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, problem: str) -> InvalidRule:
        return InvalidRule(f"{self.source}: {path}: {problem}")


def load_rules(path: Path | str) -> RuleSet:
    """Read and check a rules file; :class:`InvalidRule` names file, JSON path and problem."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise InvalidRule(f"{source}: cannot read the rules file ({error.strerror})") from None
    return parse_rules(raw, source)


def parse_rules(raw: bytes | str, source: str = "<rules>") -> RuleSet:
    """Parse the text of a rules file (see the module docstring for its shape)."""
    where = _Where(source)
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as error:
        raise where.fail("$", f"not valid JSON ({error})") from None
    except RecursionError:
        raise where.fail("$", "JSON is nested too deeply") from None
    if not isinstance(document, dict) or len(document) != 1:
        raise where.fail(
            "$", 'must be an object with one namespace key, e.g. {"celine": {"mqtt": ...}}'
        )
    ((namespace, body),) = document.items()
    base = f"$.{namespace}"
    _object(where, base, body, {"mqtt", "roles"})
    mqtt = _object(where, f"{base}.mqtt", body.get("mqtt"), {"acl"})
    acl = _object(where, f"{base}.mqtt.acl", mqtt.get("acl"), {"rules"})
    rules_path = f"{base}.mqtt.acl.rules"
    raw_rules = acl.get("rules")
    if not isinstance(raw_rules, list):
        raise where.fail(rules_path, f"must be a list of rules, got {_kind(raw_rules)}")
    if len(raw_rules) > _MAX_RULES:
        raise where.fail(rules_path, f"has {len(raw_rules)} rules; at most {_MAX_RULES}")
    rules = tuple(
        _rule(where, f"{rules_path}[{index}]", item) for index, item in enumerate(raw_rules)
    )
    roles = _roles(where, f"{base}.roles", body.get("roles", {}))
    return RuleSet(rules, roles, source)


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _object(where: _Where, path: str, value: object, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise where.fail(path, f"must be an object, got {_kind(value)}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise where.fail(path, f"unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")
    return value


def _strings(where: _Where, path: str, value: object) -> list[str]:
    if not isinstance(value, list) or not value:
        raise where.fail(path, f"must be a non-empty list of strings, got {_kind(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise where.fail(f"{path}[{index}]", f"must be a non-empty string, got {item!r}")
    return value


def _rule(where: _Where, path: str, item: object) -> Rule:
    rule = _object(where, path, item, set(_RULE_FIELDS))
    for required in ("subjects", "topics", "actions"):
        if required not in rule:
            raise where.fail(path, f"missing {required!r}")
    subjects = _object(where, f"{path}.subjects", rule["subjects"], set(_SUBJECT_FIELDS))
    if not subjects:
        raise where.fail(
            f"{path}.subjects",
            "names no criterion; give at least one of types, ids, groups, scopes",
        )
    selector: dict[str, frozenset[str]] = {}
    for name in _SUBJECT_FIELDS:
        if name in subjects:
            values = _strings(where, f"{path}.subjects.{name}", subjects[name])
            if name == "types":
                for index, value in enumerate(values):
                    if value not in SubjectType.__members__.values():
                        known = ", ".join(t.value for t in SubjectType)
                        raise where.fail(
                            f"{path}.subjects.types[{index}]",
                            f"unknown subject type {value!r}; known: {known}",
                        )
            selector[name] = frozenset(values)
    topics = _strings(where, f"{path}.topics", rule["topics"])
    for index, topic in enumerate(topics):
        # Check the filter with the placeholders filled by a harmless id.
        problem = topic_filter_problem(topic.replace("%u", "u").replace("%c", "c"))
        if problem is not None:
            raise where.fail(f"{path}.topics[{index}]", problem)
    actions = _actions(where, f"{path}.actions", rule["actions"])
    effect_value = rule.get("effect", Effect.ALLOW.value)
    if effect_value not in (Effect.ALLOW.value, Effect.DENY.value):
        raise where.fail(f"{path}.effect", f"must be 'allow' or 'deny', got {effect_value!r}")
    description = rule.get("description")
    if description is not None and not isinstance(description, str):
        raise where.fail(f"{path}.description", f"must be a string, got {_kind(description)}")
    name = f"{where.source}: {path}" + (f" ({description})" if description else "")
    return Rule(
        SubjectSelector(**selector),
        tuple(topics),
        actions,
        Effect(effect_value),
        name,
    )


def _actions(where: _Where, path: str, value: object) -> frozenset[Action]:
    if value == "*":
        return ALL_ACTIONS
    names = _strings(where, path, value)
    actions: set[Action] = set()
    for index, name in enumerate(names):
        if name == "*":
            actions.update(ALL_ACTIONS)
        elif name in Action.__members__.values():
            actions.add(Action(name))
        else:
            raise where.fail(
                f"{path}[{index}]",
                f"unknown action {name!r}; use subscribe, read, publish or '*'",
            )
    return frozenset(actions)


def _roles(where: _Where, path: str, value: object) -> Roles:
    roles = _object(where, path, value, set(_ROLE_FIELDS))
    tables: dict[str, dict[str, frozenset[str]]] = {}
    for table in _ROLE_FIELDS:
        entries = roles.get(table, {})
        if not isinstance(entries, dict):
            raise where.fail(f"{path}.{table}", f"must be an object, got {_kind(entries)}")
        parsed: dict[str, frozenset[str]] = {}
        for key, permissions in entries.items():
            entry_path = f"{path}.{table}.{key}"
            if not isinstance(permissions, list):
                raise where.fail(
                    entry_path, f"must be a list of permissions, got {_kind(permissions)}"
                )
            for index, permission in enumerate(permissions):
                if not isinstance(permission, str) or permission not in PERMISSIONS:
                    raise where.fail(
                        f"{entry_path}[{index}]",
                        f"unknown permission {permission!r}; use {', '.join(sorted(PERMISSIONS))}",
                    )
            if table == "type_permissions" and key not in SubjectType.__members__.values():
                raise where.fail(entry_path, f"unknown subject type {key!r}")
            parsed[key] = frozenset(permissions)
        tables[table] = parsed
    return Roles(**tables)
