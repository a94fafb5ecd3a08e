"""The default rules decide exactly as the ACL file the bench gives Mosquitto.

If ``bench.services.config.mosquitto_acl`` changes, this test names the first check on
which the policy service would now disagree with the broker's file.
"""

from __future__ import annotations

import itertools

from backend.contract import MessageKind, topic_for
from backend.policy.engine import (
    ANY_DEVICE,
    PROBE_IDENTITY,
    Access,
    AclEngine,
    Rule,
    backend_identity,
    site_engine,
)
from bench.services import config

_ACCESS = {
    # In a Mosquitto ACL file "read" also grants subscribing.
    "read": Access.READ | Access.SUBSCRIBE,
    "write": Access.WRITE,
    "readwrite": Access.READ | Access.WRITE | Access.SUBSCRIBE,
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
            rules.append(Rule((ANY_DEVICE,), (topic_filter,), _ACCESS[access]))
        else:
            assert user is not None, f"{line!r} before any user line"
            rules.append(Rule((user,), (topic_filter,), _ACCESS[access]))
    return rules


def test_identities_are_the_benchs() -> None:
    assert config.PROBE_IDENTITY == PROBE_IDENTITY
    assert config.backend_identity("a") == backend_identity("a")


def test_default_rules_decide_as_the_benchs_acl_file() -> None:
    backend = backend_identity("a")
    from_file = AclEngine(
        rules_of_acl_file(config.mosquitto_acl([backend])),
        service_identities=(backend, PROBE_IDENTITY),
    )
    ours = site_engine("a")
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
        expected = from_file.check(username, "client-1", topic, acc)
        actual = ours.check(username, "client-1", topic, acc)
        assert actual.allowed == expected.allowed, (username, topic, acc, actual)
        checked += 1
    assert checked > 300
