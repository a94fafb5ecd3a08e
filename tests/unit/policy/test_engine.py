"""The ACL engine: every default rule, deny-wins, %u/%c hygiene, user and superuser checks."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.policy.engine import (
    ANY_DEVICE,
    Access,
    AclEngine,
    Effect,
    Rule,
    default_rules,
    site_engine,
)
from backend.policy.errors import InvalidRule

BACKEND = "aurora-backend-a"
OTHER_BACKEND = "aurora-backend-b"
PROBE = "bench-probe"
DOOR = "stm32f401-door-03"
ENV = "esp32s3-env-01"
R, W, S = 1, 2, 4

ENGINE = site_engine("a")

# (username, topic, acc, allowed) — one row per line of the bench's ACL file and its edges.
TABLE = [
    # devices write only under their own id
    (DOOR, f"aurora/sensors/{DOOR}/status", W, True),
    (DOOR, f"aurora/sensors/{DOOR}/telemetry", W, True),
    (DOOR, f"aurora/sensors/{DOOR}/alerts", W, True),
    (DOOR, f"aurora/sensors/{DOOR}", W, True),  # '#' matches the parent level too
    (DOOR, f"aurora/access/{DOOR}/badge_event", W, True),
    (DOOR, f"aurora/attestation/{DOOR}/response", W, True),
    (DOOR, f"aurora/sensors/{ENV}/status", W, False),  # another device's id
    (DOOR, f"aurora/access/{ENV}/badge_event", W, False),
    (DOOR, f"aurora/access/{DOOR}/command", W, False),  # a device cannot command itself
    (DOOR, f"aurora/attestation/{DOOR}/request", W, False),
    (DOOR, f"aurora/sensors/{DOOR}x/status", W, False),
    (DOOR, "aurora/other", W, False),
    # devices read / subscribe only their own downlink topics
    (DOOR, f"aurora/access/{DOOR}/command", R, True),
    (DOOR, f"aurora/access/{DOOR}/command", S, True),
    (DOOR, f"aurora/attestation/{DOOR}/request", R, True),
    (DOOR, f"aurora/attestation/{DOOR}/request", S, True),
    (DOOR, f"aurora/access/{ENV}/command", R, False),
    (DOOR, f"aurora/access/{ENV}/command", S, False),
    (DOOR, "aurora/access/+/command", S, False),  # wildcard wider than its own topic
    (DOOR, "#", S, False),
    (DOOR, f"aurora/sensors/{DOOR}/status", R, False),  # may write it, not read it
    (DOOR, f"aurora/sensors/{DOOR}/status", S, False),
    (DOOR, f"$share/g/aurora/access/{DOOR}/command", S, True),
    # the backend reads and subscribes aurora/#, including shared subscriptions
    (BACKEND, "aurora/sensors/d1/status", R, True),
    (BACKEND, "aurora/sensors/+/status", S, True),
    (BACKEND, "$share/ingest/aurora/sensors/+/status", S, True),
    (BACKEND, "$share/ingest/aurora/attestation/+/response", S, True),
    (BACKEND, "aurora/#", S, True),
    (BACKEND, "#", S, False),
    (BACKEND, "$SYS/broker/uptime", R, False),
    (BACKEND, "other/topic", R, False),
    # ... and writes commands and attestation requests, nothing else
    (BACKEND, f"aurora/access/{DOOR}/command", W, True),
    (BACKEND, f"aurora/attestation/{DOOR}/request", W, True),
    (BACKEND, f"aurora/sensors/{DOOR}/status", W, False),
    (BACKEND, f"aurora/access/{DOOR}/badge_event", W, False),
    # a backend of another site is nobody here (and not a device either)
    (OTHER_BACKEND, "aurora/sensors/d1/status", R, False),
    (OTHER_BACKEND, f"aurora/access/{DOOR}/command", W, False),
    # the probe reads everything and writes aurora/#
    (PROBE, "#", S, True),
    (PROBE, "anything/else", R, True),
    (PROBE, "$SYS/broker/uptime", R, False),  # '#' never matches '$' topics (§4.7.2)
    (PROBE, f"aurora/sensors/{DOOR}/status", W, True),
    (PROBE, "aurora/whatever/malformed", W, True),
    (PROBE, "elsewhere/x", W, False),
    (PROBE, f"aurora/access/{PROBE}/command", R, True),
    # combined read+write (acc 3): both bits must be allowed
    (BACKEND, f"aurora/access/{DOOR}/command", 3, True),
    (DOOR, f"aurora/access/{DOOR}/command", 3, False),
    # invalid requests
    (DOOR, "aurora/sensors/+/status", W, False),  # wildcard in a topic name
    (DOOR, "", W, False),
    (BACKEND, "$share/ingest", S, False),
    (BACKEND, "aurora/#/x", S, False),
    (BACKEND, "aurora/sensors/d1/status", 8, False),
    (BACKEND, "aurora/sensors/d1/status", 0, False),
]


@pytest.mark.parametrize(("username", "topic", "acc", "allowed"), TABLE)
def test_default_rules(username: str, topic: str, acc: int, allowed: bool) -> None:
    decision = ENGINE.check(username, f"{username}-client", topic, acc)
    assert decision.allowed is allowed, decision
    assert (decision.reason == "") is allowed


def test_the_other_backend_is_not_treated_as_a_device_here() -> None:
    # In site "a" "aurora-backend-b" is just a device id; it gets the device patterns only.
    assert ENGINE.check(OTHER_BACKEND, "c", f"aurora/sensors/{OTHER_BACKEND}/status", W).allowed
    assert not ENGINE.check(OTHER_BACKEND, "c", "aurora/#", S).allowed


def test_service_identities_get_no_device_rights() -> None:
    # The backend's own name is a valid device id, but it is no device.
    assert not ENGINE.check(BACKEND, "c", f"aurora/sensors/{BACKEND}/status", W).allowed
    engine = AclEngine(default_rules([]), service_identities=("svc-1",))
    assert not engine.check("svc-1", "c", "aurora/sensors/svc-1/status", W).allowed
    assert not engine.check("svc-1", "c", "aurora/access/svc-1/command", S).allowed
    assert engine.check("svc-2", "c", "aurora/access/svc-2/command", S).allowed


@pytest.mark.parametrize(
    "username",
    ["+", "#", "a/b", "dev+", "dev#", "dévice", "dev\n", "", "x" * 65, "dev ice", "%u"],
)
def test_a_bad_username_never_fills_a_percent_u_rule(username: str) -> None:
    topics = [
        f"aurora/access/{username}/command",
        "aurora/access/+/command",
        "aurora/access/#",
        "#",
    ]
    for topic in topics:
        for acc in (R, W, S):
            assert not ENGINE.check(username, "client", topic, acc).allowed, (topic, acc)
    for topic in ("aurora/sensors/x/status", "aurora/sensors/a/b/status", "aurora/sensors/x"):
        assert not ENGINE.check(username, "client", topic, W).allowed


@given(st.text(max_size=20), st.sampled_from([R, W, S]))
def test_only_valid_device_ids_get_device_rights(username: str, acc: int) -> None:
    topic = "aurora/access/dev-1/command" if acc != W else "aurora/sensors/dev-1/status"
    allowed = ENGINE.check(username, "c", topic, acc).allowed
    assert allowed == (username in ("dev-1", PROBE) or (username == BACKEND and acc != W))


def test_deny_wins_over_allow_in_any_order() -> None:
    allow = Rule((ANY_DEVICE,), ("aurora/sensors/%u/#",), Access.WRITE, name="own sensors")
    deny = Rule(
        ("stm32f401-*",),
        ("aurora/sensors/%u/alerts",),
        Access.WRITE,
        Effect.DENY,
        name="doors raise no alerts",
    )
    for rules in ((allow, deny), (deny, allow)):
        engine = AclEngine(rules, service_identities=())
        denied = engine.check(DOOR, "c", f"aurora/sensors/{DOOR}/alerts", W)
        assert not denied.allowed
        assert "doors raise no alerts" in denied.reason
        assert engine.check(DOOR, "c", f"aurora/sensors/{DOOR}/status", W).allowed
        assert engine.check(ENV, "c", f"aurora/sensors/{ENV}/alerts", W).allowed


def test_nothing_matching_is_a_deny() -> None:
    engine = AclEngine((), service_identities=())
    decision = engine.check(DOOR, "c", f"aurora/sensors/{DOOR}/status", W)
    assert not decision.allowed
    assert "no rule allows" in decision.reason


def test_client_id_substitution_is_validated_too() -> None:
    rule = Rule((ANY_DEVICE,), ("clients/%c/#",), Access.WRITE)
    engine = AclEngine((rule,), service_identities=())
    assert engine.check(DOOR, "door-3-client", "clients/door-3-client/x", W).allowed
    assert not engine.check(DOOR, "other", "clients/door-3-client/x", W).allowed
    assert not engine.check(DOOR, "+", "clients/+/x", W).allowed
    assert not engine.check(DOOR, "#", "clients/x", W).allowed
    assert not engine.check(DOOR, "", "clients//x", W).allowed


def test_a_glob_subject_never_matches_a_service_identity() -> None:
    rule = Rule(("aurora-*",), ("x/#",), Access.WRITE)
    engine = AclEngine((rule,), service_identities=(BACKEND,))
    assert engine.check("aurora-door", "c", "x/y", W).allowed
    assert not engine.check(BACKEND, "c", "x/y", W).allowed


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"subjects": (), "topics": ("a",), "actions": Access.READ}, "no subject"),
        ({"subjects": ("x",), "topics": (), "actions": Access.READ}, "no topic filter"),
        ({"subjects": ("x",), "topics": ("a",), "actions": Access(0)}, "no action"),
        ({"subjects": ("x",), "topics": ("a/#/b",), "actions": Access.READ}, "'#' must"),
        ({"subjects": ("x",), "topics": ("a/%u+",), "actions": Access.READ}, "'+' must"),
    ],
)
def test_invalid_rules_are_refused(kwargs: dict[str, object], problem: str) -> None:
    with pytest.raises(InvalidRule, match=re.escape(problem)):
        Rule(**kwargs)  # type: ignore[arg-type]


def test_user_check() -> None:
    assert ENGINE.authenticate(DOOR).allowed
    assert ENGINE.authenticate(BACKEND).allowed
    assert ENGINE.authenticate(PROBE).allowed
    for bad in ("", "a/b", "+", "dévice", "x" * 65):
        decision = ENGINE.authenticate(bad)
        assert not decision.allowed
        assert "neither a service identity nor a valid device id" in decision.reason


def test_superuser_is_only_the_sites_backend() -> None:
    assert ENGINE.superuser(BACKEND).allowed
    for name in (OTHER_BACKEND, PROBE, DOOR, ""):
        assert not ENGINE.superuser(name).allowed


def test_default_rules_serve_several_backends() -> None:
    engine = AclEngine(default_rules([BACKEND, OTHER_BACKEND]), (BACKEND, OTHER_BACKEND))
    for backend in (BACKEND, OTHER_BACKEND):
        assert engine.check(backend, "c", f"aurora/access/{DOOR}/command", W).allowed
