"""The ACL engine: rules over certificate identities, topic filters and actions (no I/O).

A rule says which *subjects* (MQTT usernames, here certificate CNs) may or may not do which
*actions* on which *topics* (seed 004: subjects / topics / actions / effect)::

    Rule(subjects=(ANY_DEVICE,), topics=("aurora/sensors/%u/#",), actions=Access.WRITE)

* Subjects: an exact identity (``aurora-backend-a``, ``bench-probe``), :data:`ANY_DEVICE`
  (any valid device id that is not a service identity), or a glob such as ``stm32f401-*``
  (matched only against valid device ids).
* Topics: MQTT filters; ``%u`` / ``%c`` are replaced by the username / client id. The
  value must be a valid device id (``backend.contract.validate_device_id``), so a username
  carrying ``+``, ``#``, ``/`` or non-ASCII never turns a per-device rule into a wildcard:
  the rule simply does not apply.
* Actions: the ``acc`` bits mosquitto-go-auth sends (read 1, write 2, subscribe 4).
* Effect: a matching deny beats any allow; nothing matching is a deny.

READ is checked against the topic name of each delivered message, WRITE against the
published topic name, SUBSCRIBE against the requested filter (shared subscriptions are
unwrapped first): a subscription is allowed only if the rule's filter covers every topic
the requested filter can match.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntFlag, StrEnum

from backend.contract import validate_device_id
from backend.contract.errors import ContractViolation
from backend.policy.errors import InvalidRule
from backend.policy.topics import (
    levels_cover,
    levels_match,
    strip_share,
    topic_filter_problem,
    topic_name_problem,
)

#: Subject that stands for every device: a valid device id that is no service identity.
ANY_DEVICE = "@device"
#: The bench's probe identity (bench.services.config.PROBE_IDENTITY; the backend cannot
#: import the bench, so the name is repeated here).
PROBE_IDENTITY = "bench-probe"


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


class Effect(StrEnum):
    """What a matching rule decides."""

    ALLOW = "allow"
    DENY = "deny"


def is_device_id(value: str) -> bool:
    """True if ``value`` is a valid device id of the contract."""
    try:
        validate_device_id(value)
    except ContractViolation:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Rule:
    """One ACL rule; validated when built (raises :class:`InvalidRule`)."""

    subjects: tuple[str, ...]
    topics: tuple[str, ...]
    actions: Access
    effect: Effect = Effect.ALLOW
    name: str = ""
    _levels: tuple[tuple[str, ...], ...] = field(init=False, repr=False, compare=False)
    _mask: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        label = self.name or f"rule on {', '.join(self.topics)}"
        if not self.subjects:
            raise InvalidRule(f"{label}: names no subject")
        if not self.topics:
            raise InvalidRule(f"{label}: names no topic filter")
        if not self.actions:
            raise InvalidRule(f"{label}: allows no action (read=1, write=2, subscribe=4)")
        for topic_filter in self.topics:
            # Check the filter with placeholders filled by a harmless device id.
            problem = topic_filter_problem(_substitute(topic_filter, "u", "c"))
            if problem is not None:
                raise InvalidRule(f"{label}: {problem}")
        object.__setattr__(self, "_levels", tuple(tuple(t.split("/")) for t in self.topics))
        # Plain int: IntFlag arithmetic is slow on the per-publish hot path.
        object.__setattr__(self, "_mask", int(self.actions))

    def applies_to(self, who: Requester) -> bool:
        """True if the requester is one of this rule's subjects."""
        return any(_subject_matches(subject, who) for subject in self.subjects)

    def matches(self, who: Requester, topic: str, action: Access) -> bool:
        """True if one of this rule's filters matches ``topic`` for ``action``.

        ``topic`` is a topic name for READ/WRITE and an (unshared) filter for SUBSCRIBE.
        """
        if not self._mask & action.value:
            return False
        subscribe = action.value == Access.SUBSCRIBE.value
        for template, levels in zip(self.topics, self._levels, strict=True):
            if "%" in template:
                concrete = who.fill(template)
                if concrete is None:
                    continue
                levels = tuple(concrete.split("/"))  # noqa: PLW2901 - the filled-in filter
            if subscribe:
                if levels_cover(levels, topic):
                    return True
            elif levels_match(levels, topic):
                return True
        return False


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asks, with the identity checks every rule needs done once per request."""

    username: str
    clientid: str
    is_service: bool
    user_is_device: bool
    client_is_device: bool

    @classmethod
    def of(cls, username: str, clientid: str, service_identities: frozenset[str]) -> Requester:
        """The requester ``username`` (client id ``clientid``) at a site with these services."""
        return cls(
            username,
            clientid,
            username in service_identities,
            is_device_id(username),
            is_device_id(clientid),
        )

    @property
    def is_device(self) -> bool:
        """A valid device id that is no service identity."""
        return self.user_is_device and not self.is_service

    def fill(self, template: str) -> str | None:
        """``template`` with %u/%c filled in, or None when a needed value is no device id."""
        if "%u" in template and not self.user_is_device:
            return None
        if "%c" in template and not self.client_is_device:
            return None
        return _substitute(template, self.username, self.clientid)


def _subject_matches(subject: str, who: Requester) -> bool:
    if subject == who.username:
        return True
    if subject == ANY_DEVICE:
        return who.is_device
    if any(char in subject for char in "*?["):
        # Globs only ever match device ids, never a service identity by accident.
        return who.is_device and fnmatch.fnmatchcase(who.username, subject)
    return False


def _substitute(template: str, username: str, clientid: str) -> str:
    return template.replace("%u", username).replace("%c", clientid)


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one check: ``reason`` is what the HTTP ``error`` field carries."""

    allowed: bool
    reason: str
    rule: str | None = None


class AclEngine:
    """Decides user, superuser and ACL checks for one site from a fixed rule set."""

    def __init__(
        self,
        rules: Iterable[Rule],
        service_identities: Iterable[str],
        superusers: Iterable[str] = (),
    ) -> None:
        self.rules = tuple(rules)
        self.service_identities = frozenset(service_identities)
        self.superusers = frozenset(superusers)

    def authenticate(self, username: str) -> Decision:
        """Known service identities and valid device ids pass; the TLS layer proved them.

        With ``use_identity_as_username`` Mosquitto never asks this; the answer exists for
        brokers configured otherwise and refuses names no certificate of ours could carry.
        No password is checked: a listener without client certificates must not use this
        service for authentication.
        """
        if username in self.service_identities:
            return Decision(True, "", "service identity")
        if is_device_id(username):
            return Decision(True, "", "device identity")
        return Decision(
            False, f"username {username!r} is neither a service identity nor a valid device id"
        )

    def superuser(self, username: str) -> Decision:
        """Only the listed superusers (the site's backend identity) skip ACL checks.

        go-auth asks no ACL question of a superuser, so the backend may then publish
        anywhere; ``auth_opt_disable_superuser true`` keeps it to the ACL-file rules.
        """
        if username in self.superusers:
            return Decision(True, "", "superuser")
        return Decision(False, f"{username!r} is not a superuser")

    def check(self, username: str, clientid: str, topic: str, acc: int) -> Decision:
        """May ``username`` do ``acc`` (1 read, 2 write, 3 read+write, 4 subscribe) on topic?"""
        if acc not in VALID_ACC:
            return Decision(False, f"acc {acc} is not 1 (read), 2 (write) or 4 (subscribe)")
        who = Requester.of(username, clientid, self.service_identities)
        decision = Decision(True, "")
        # Mosquitto 2.0 never sends combined bits, but go-auth defines 3 (readwrite):
        # every bit asked must be allowed on its own.
        for action in _ACTIONS:
            if acc & action.value:
                decision = self._check_one(who, topic, action)
                if not decision.allowed:
                    return decision
        return decision

    def _check_one(self, who: Requester, topic: str, action: Access) -> Decision:
        verb = _VERBS[action]
        if action is Access.SUBSCRIBE:
            try:
                topic = strip_share(topic)
            except ValueError as error:
                return Decision(False, str(error))
            problem = topic_filter_problem(topic)
        else:
            problem = topic_name_problem(topic)
        if problem is not None:
            return Decision(False, problem)
        allowed_by: Rule | None = None
        for rule in self.rules:
            if not rule.applies_to(who) or not rule.matches(who, topic, action):
                continue
            if rule.effect is Effect.DENY:
                return Decision(
                    False,
                    f"{verb} on {topic!r} denied to {who.username!r} by {_label(rule)}",
                    rule.name,
                )
            allowed_by = allowed_by or rule
        if allowed_by is None:
            return Decision(False, f"no rule allows {who.username!r} to {verb} {topic!r}")
        return Decision(True, "", allowed_by.name)


_ACTIONS = (Access.READ, Access.WRITE, Access.SUBSCRIBE)
_VERBS = {Access.READ: "read", Access.WRITE: "write", Access.SUBSCRIBE: "subscribe"}


def _label(rule: Rule) -> str:
    return rule.name or f"the rule on {', '.join(rule.topics)}"


_READ_SUB = Access.READ | Access.SUBSCRIBE


def default_rules(backend_identities: Iterable[str]) -> tuple[Rule, ...]:
    """The bench's Mosquitto ACL file (bench.services.config.mosquitto_acl) as rules.

    In an ACL file ``read`` covers subscribing too, hence READ|SUBSCRIBE here.
    """
    rules: list[Rule] = []
    for identity in backend_identities:
        rules += [
            Rule((identity,), ("aurora/#",), _READ_SUB, name=f"{identity} reads aurora/#"),
            Rule(
                (identity,),
                ("aurora/access/+/command", "aurora/attestation/+/request"),
                Access.WRITE,
                name=f"{identity} sends commands and attestation requests",
            ),
        ]
    rules += [
        # The scenario runner publishes raw (even malformed) messages through the probe.
        Rule((PROBE_IDENTITY,), ("#",), _READ_SUB, name="bench-probe reads everything"),
        Rule((PROBE_IDENTITY,), ("aurora/#",), Access.WRITE, name="bench-probe writes aurora/#"),
        # Devices: write only under their own id, read only their own downlink topics.
        Rule(
            (ANY_DEVICE,),
            (
                "aurora/sensors/%u/#",
                "aurora/access/%u/badge_event",
                "aurora/attestation/%u/response",
            ),
            Access.WRITE,
            name="devices publish under their own id",
        ),
        Rule(
            (ANY_DEVICE,),
            ("aurora/access/%u/command", "aurora/attestation/%u/request"),
            _READ_SUB,
            name="devices receive their own commands and attestation requests",
        ),
    ]
    return tuple(rules)


def site_engine(site_id: str) -> AclEngine:
    """The engine of one site: the default rules, its backend as the only superuser."""
    backend = backend_identity(site_id)
    return AclEngine(
        default_rules([backend]),
        service_identities=(backend, PROBE_IDENTITY),
        superusers=(backend,),
    )
