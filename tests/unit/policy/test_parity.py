"""The default rules decide exactly as the ACL file the bench gives Mosquitto.

If ``bench.services.config.mosquitto_acl`` changes, this test names the first check on
which the policy service would now disagree with the broker's file.
"""

from __future__ import annotations

import itertools

from backend.contract import MessageKind, topic_for
from backend.policy.engine import (
    PROBE_IDENTITY,
    PolicyEngine,
    SiteIdentities,
    backend_identity,
    bench_rules,
)
from backend.policy.rules import Action, Roles, Rule, RuleSet, SubjectSelector
from bench.services import config

_ACCESS = {
    # In a Mosquitto ACL file "read" also grants subscribing.
    "read": frozenset({Action.READ, Action.SUBSCRIBE}),
    "write": frozenset({Action.PUBLISH}),
    "readwrite": frozenset(Action),
}
_DEVICES = SubjectSelector(types=frozenset({"device"}))
_EVERY_TYPE = {
    kind: frozenset(action.value for action in Action) for kind in ("device", "backend", "probe")
}


def rules_of_acl_file(text: str) -> list[Rule]:
    """A minimal reader of Mosquitto's acl_file (user / topic / pattern lines)."""
    rules: list[Rule] = []
    user: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword == "user":
            user = rest.strip()
            continue
        assert keyword in ("topic", "pattern"), line
        access, _, topic_filter = rest.strip().partition(" ")
        if keyword == "pattern":
            rules.append(Rule(_DEVICES, (topic_filter,), _ACCESS[access]))
        else:
            assert user is not None, f"{line!r} before any user line"
            rules.append(
                Rule(SubjectSelector(ids=frozenset({user})), (topic_filter,), _ACCESS[access])
            )
    return rules


def test_identities_are_the_benchs() -> None:
    assert config.PROBE_IDENTITY == PROBE_IDENTITY
    assert config.backend_identity("a") == backend_identity("a")


def test_the_rules_file_decides_as_the_benchs_acl_file() -> None:
    backend = backend_identity("a")
    from_file = PolicyEngine(
        RuleSet(
            tuple(rules_of_acl_file(config.mosquitto_acl([backend]))),
            Roles(type_permissions=_EVERY_TYPE),
        )
    )
    ours = PolicyEngine(bench_rules())
    identities = SiteIdentities("a")
    devices = ["stm32f401-door-03", "esp32s3-env-01"]
    users = [backend, PROBE_IDENTITY, *devices, "aurora-backend-b"]
    topics = [
        topic_for(kind, device_id)
        for kind in MessageKind
        for device_id in [*devices, backend, PROBE_IDENTITY]
    ]
    topics += [
        "#",
        "aurora/#",
        "aurora/sensors/+/status",
        "$share/ingest/aurora/sensors/+/status",
        "$share/ingest/aurora/attestation/+/response",
        "aurora/access/+/command",
        "$SYS/broker/uptime",
        "other/topic",
        "aurora",
    ]
    checked = 0
    for username, topic, acc in itertools.product(users, topics, (1, 2, 4)):
        if acc != 4 and ("+" in topic or "#" in topic):
            continue  # not a topic name; both refuse it
        subject = identities.subject(username)
        assert subject is not None, username
        expected = from_file.check(subject, "client-1", topic, acc)
        actual = ours.check(subject, "client-1", topic, acc)
        assert actual.allowed == expected.allowed, (username, topic, acc, actual)
        checked += 1
    assert checked > 300
