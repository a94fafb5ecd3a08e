"""The decision engine over a :class:`~backend.policy.rules.RuleSet` (no I/O).

A check asks: may this :class:`~backend.policy.rules.Subject` read (acc 1), publish (2)
or subscribe (4) this topic? It is allowed only if

1. the topic is a valid topic name (read, publish) or filter (subscribe; a shared
   subscription ``$share/<group>/<filter>`` is judged by its filter),
2. the subject holds the action through ``roles`` (type, groups, scopes),
3. an allow rule whose subjects match covers the topic, and
4. no deny rule whose subjects match covers it (deny wins, in any order).

READ is checked against the topic name of each delivered message, PUBLISH against the
published name, SUBSCRIBE against the requested filter: a subscription is allowed only if
the rule's filter covers every topic the requested filter can match.

Certificate identities become subjects through :class:`SiteIdentities`: the site's
backend (type ``backend``), the bench probe (``probe``) and any valid device id
(``device``). Tokens become subjects in :mod:`backend.policy.tokens`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import IntFlag
from importlib import resources
from pathlib import Path

from backend.contract import validate_device_id
from backend.contract.errors import ContractViolation
from backend.policy.rules import (
    SUPERUSER,
    Action,
    Effect,
    Rule,
    RuleSet,
    Subject,
    SubjectType,
    load_rules,
    parse_rules,
)
from backend.policy.topics import levels_cover, levels_match, strip_share, topic_filter_problem
from backend.policy.topics import topic_name_problem as _topic_name_problem

#: The bench's probe identity (bench.services.config.PROBE_IDENTITY; the backend cannot
#: import the bench, so the name is repeated here).
PROBE_IDENTITY = "bench-probe"
#: The bench's rules file: its devices, backends and probe, plus the seed's example rules.
BENCH_RULES = "bench-rules.json"


def backend_identity(site_id: str) -> str:
    """The certificate CN (= MQTT username) of a site's backend."""
    return f"aurora-backend-{site_id}"


class Access(IntFlag):
    """The ``acc`` values of mosquitto-go-auth (Mosquitto's MOSQ_ACL_* bits)."""

    READ = 1
    WRITE = 2
    SUBSCRIBE = 4


#: The ``acc`` values mosquitto-go-auth sends (3 = readwrite exists; Mosquitto 2.0 never
#: sends it).
VALID_ACC = frozenset({1, 2, 3, 4})
_ACTION_OF = {
    Access.READ: Action.READ,
    Access.WRITE: Action.PUBLISH,
    Access.SUBSCRIBE: Action.SUBSCRIBE,
}
_BITS = (Access.READ, Access.WRITE, Access.SUBSCRIBE)


def is_device_id(value: str) -> bool:
    """True if ``value`` is a valid device id of the contract."""
    try:
        validate_device_id(value)
    except ContractViolation:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one check: ``reason`` is what the HTTP ``error`` field carries."""

    allowed: bool
    reason: str
    rule: str | None = None


class SiteIdentities:
    """The certificate identities of one site as subjects."""

    def __init__(self, site_id: str) -> None:
        self.backend = backend_identity(site_id)

    def subject(self, username: str) -> Subject | None:
        """The subject a client certificate with CN ``username`` stands for, or None."""
        if username == self.backend:
            return Subject(SubjectType.BACKEND, username)
        if username == PROBE_IDENTITY:
            return Subject(SubjectType.PROBE, username)
        if is_device_id(username):
            # Another site's backend name is a valid device id: here it is just a device.
            return Subject(SubjectType.DEVICE, username)
        return None


#: Decisions remembered (least recently used dropped first): Mosquitto asks the same few
#: (subject, topic, acc) questions for every message, and the rule set never changes
#: while the service runs.
DECISION_CACHE_SIZE = 4096
#: Longer topics are decided every time: the cache's memory stays bounded (topics may be
#: 64 KiB) and no one can flush it with one-off giant names cheaply.
DECISION_CACHE_TOPIC_MAX = 256


class PolicyEngine:
    """Decides superuser and ACL checks from one rule set.

    ACL decisions are cached (bounded LRU) by everything they depend on: the whole
    subject (type, id, groups, scopes), the client id, the topic and ``acc``. A subject
    only reaches the engine after its token verified, so the cache never answers for a
    token the verifier would refuse.
    """

    def __init__(self, rule_set: RuleSet, cache_size: int = DECISION_CACHE_SIZE) -> None:
        self.rule_set = rule_set
        self.cache_size = cache_size
        self._decisions: OrderedDict[tuple[Subject, str, str, int], Decision] = OrderedDict()

    def superuser(self, subject: Subject) -> Decision:
        """True for a subject holding ``superuser`` through its roles."""
        if SUPERUSER in self.rule_set.roles.permissions(subject):
            return Decision(True, "", "superuser")
        return Decision(False, f"{subject.describe()} is not a superuser")

    def check(self, subject: Subject, clientid: str, topic: str, acc: int) -> Decision:
        """May ``subject`` do ``acc`` (1 read, 2 write, 3 read+write, 4 subscribe) on topic?"""
        if len(topic) > DECISION_CACHE_TOPIC_MAX or self.cache_size <= 0:
            return self.decide(subject, clientid, topic, acc)
        key = (subject, clientid, topic, acc)
        cached = self._decisions.get(key)
        if cached is not None:
            self._decisions.move_to_end(key)
            return cached
        decision = self._decisions[key] = self.decide(subject, clientid, topic, acc)
        if len(self._decisions) > self.cache_size:
            self._decisions.popitem(last=False)
        return decision

    def decide(self, subject: Subject, clientid: str, topic: str, acc: int) -> Decision:
        """:meth:`check` without the cache."""
        if acc not in VALID_ACC:
            return Decision(False, f"acc {acc} is not 1 (read), 2 (write) or 4 (subscribe)")
        decision = Decision(True, "")
        # Mosquitto 2.0 never sends combined bits, but go-auth defines 3 (readwrite):
        # every bit asked must be allowed on its own.
        held = self.rule_set.roles.permissions(subject)
        for bit in _BITS:
            if acc & bit.value:
                decision = self._check_one(subject, clientid, topic, _ACTION_OF[bit], held)
                if not decision.allowed:
                    return decision
        return decision

    def _check_one(
        self, subject: Subject, clientid: str, topic: str, action: Action, held: frozenset[str]
    ) -> Decision:
        subscribe = action is Action.SUBSCRIBE
        if subscribe:
            try:
                topic = strip_share(topic)
            except ValueError as error:
                return Decision(False, str(error))
            problem = topic_filter_problem(topic)
        else:
            problem = _topic_name_problem(topic)
        if problem is not None:
            return Decision(False, problem)
        if action.value not in held:
            return Decision(
                False,
                f"{subject.describe()} holds no {action.value!r} permission "
                "(roles.group_permissions / scope_permissions grant it)",
            )
        allowed_by: Rule | None = None
        for rule in self.rule_set.rules:
            if action not in rule.actions or not rule.subjects.matches(subject):
                continue
            if not _covers(rule, subject, clientid, topic, subscribe):
                continue
            if rule.effect is Effect.DENY:
                return Decision(
                    False,
                    f"{action.value} on {topic!r} denied to {subject.describe()} by {rule.name}",
                    rule.name,
                )
            allowed_by = allowed_by or rule
        if allowed_by is None:
            return Decision(
                False, f"no rule allows {subject.describe()} to {action.value} {topic!r}"
            )
        return Decision(True, "", allowed_by.name)


def _covers(rule: Rule, subject: Subject, clientid: str, topic: str, subscribe: bool) -> bool:
    for template, levels in zip(rule.topics, rule.levels, strict=True):
        if "%" in template:
            concrete = _fill(template, subject.id, clientid)
            if concrete is None:
                continue
            levels = tuple(concrete.split("/"))  # noqa: PLW2901 - the filled-in filter
        if subscribe:
            if levels_cover(levels, topic):
                return True
        elif levels_match(levels, topic):
            return True
    return False


def _fill(template: str, subject_id: str, clientid: str) -> str | None:
    """``template`` with %u/%c filled in, or None when a needed value is no device id.

    Only device-id-shaped values are substituted, so an id carrying ``+``, ``#``, ``/`` or
    non-ASCII never turns a per-device rule into a wildcard: the rule does not apply.
    """
    if "%u" in template and not is_device_id(subject_id):
        return None
    if "%c" in template and not is_device_id(clientid):
        return None
    return template.replace("%u", subject_id).replace("%c", clientid)


def bench_rules() -> RuleSet:
    """The rules file shipped with the bench (devices, backends, probe, seed examples)."""
    resource = resources.files("backend.policy").joinpath("data", BENCH_RULES)
    return parse_rules(resource.read_bytes(), f"backend/policy/data/{BENCH_RULES}")


def rule_set(path: Path | None) -> RuleSet:
    """The rules of ``path``, or the bench's own rules file when None."""
    return bench_rules() if path is None else load_rules(path)
