"""The engine over the bench's rules file: seed 004's examples as golden vectors and every
device rule, in one decision table; deny wins, %u/%c hygiene, roles, superusers, and the
decision cache (token validation is in test_tokens, the rules loader in test_rules)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.policy.engine import (
    DECISION_CACHE_TOPIC_MAX,
    Decision,
    PolicyEngine,
    SiteIdentities,
    bench_rules,
)
from backend.policy.rules import Subject, SubjectType, parse_rules

BACKEND = "aurora-backend-a"
OTHER_BACKEND = "aurora-backend-b"
PROBE = "bench-probe"
DOOR = "stm32f401-door-03"
ENV = "esp32s3-env-01"
R, W, S = 1, 2, 4

ENGINE = PolicyEngine(bench_rules())
IDENTITIES = SiteIdentities("a")


def check(who: str | Subject, clientid: str, topic: str, acc: int) -> Decision:
    """A check as a token subject, or as a certificate identity of site a (a username)."""
    subject = IDENTITIES.subject(who) if isinstance(who, str) else who
    if subject is None:
        return Decision(False, f"{who!r} is nobody")
    return ENGINE.check(subject, clientid, topic, acc)


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


# (username, topic, acc, allowed) — one row per line of the bench's ACL file and its edges.
DEVICE_RULES = [
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


@pytest.mark.parametrize(("who", "topic", "acc", "allowed"), GOLDEN + DEVICE_RULES)
def test_decisions(who: str | Subject, topic: str, acc: int, allowed: bool) -> None:
    """Seed 004's examples decide as the seed says; the device rules as the ACL file did."""
    name = who if isinstance(who, str) else who.id
    decision = check(who, f"{name}-client", topic, acc)
    assert decision.allowed is allowed, decision
    assert (decision.reason == "") is allowed


def test_the_other_backend_is_just_a_device_here() -> None:
    # In site "a" "aurora-backend-b" is just a device id; it gets the device rules only.
    assert check(OTHER_BACKEND, "c", f"aurora/sensors/{OTHER_BACKEND}/status", W).allowed
    assert not check(OTHER_BACKEND, "c", "aurora/#", S).allowed


def test_service_identities_get_no_device_rights() -> None:
    # The backend's own name is a valid device id, but it is no device.
    assert not check(BACKEND, "c", f"aurora/sensors/{BACKEND}/status", W).allowed


@pytest.mark.parametrize(
    "username",
    ["+", "#", "a/b", "dev+", "dev#", "dévice", "dev\n", "", "x" * 65, "dev ice", "%u"],
)
def test_a_bad_username_is_nobody(username: str) -> None:
    assert IDENTITIES.subject(username) is None


@pytest.mark.parametrize(
    "subject_id",
    ["+", "#", "a/b", "dev+", "dev#", "dévice", "dev\n", "", "x" * 65, "dev ice", "%u"],
)
def test_a_bad_id_never_fills_a_percent_u_rule(subject_id: str) -> None:
    # Even a token subject typed "device" (no token can claim it) with a hostile id.
    who = Subject(SubjectType.DEVICE, subject_id)
    topics = [f"aurora/access/{subject_id}/command", "aurora/access/+/command", "#"]
    for topic in topics:
        for acc in (R, S):
            assert not ENGINE.check(who, "client", topic, acc).allowed, (topic, acc)
    for topic in ("aurora/sensors/x/status", "aurora/sensors/a/b/status", "aurora/sensors/x"):
        assert not ENGINE.check(who, "client", topic, W).allowed


@given(st.text(max_size=20), st.sampled_from([R, W, S]))
def test_only_valid_device_ids_get_device_rights(username: str, acc: int) -> None:
    topic = "aurora/access/dev-1/command" if acc != W else "aurora/sensors/dev-1/status"
    allowed = check(username, "c", topic, acc).allowed
    assert allowed == (username in ("dev-1", PROBE) or (username == BACKEND and acc != W))


def _rules(*rules: str, roles: str = '"type_permissions": {"device": ["publish"]}') -> PolicyEngine:
    text = (
        f'{{"t": {{"mqtt": {{"acl": {{"rules": [{", ".join(rules)}]}}}}, "roles": {{{roles}}}}}}}'
    )
    return PolicyEngine(parse_rules(text, "test.json"))


ALLOW_OWN = (
    '{"subjects": {"types": ["device"]}, "topics": ["aurora/sensors/%u/#"], "actions": ["publish"]}'
)
DENY_DOOR_ALERTS = (
    '{"subjects": {"ids": ["stm32f401-door-03"]}, "topics": ["aurora/sensors/%u/alerts"], '
    '"actions": ["publish"], "effect": "deny", "description": "door 3 raises no alerts"}'
)


def test_the_seeds_deny_names_its_rule() -> None:
    decision = ENGINE.check(VIEWER, "c", "celine/system/alerts/critical", S)
    assert "seed 004: deny specific topic" in decision.reason
    assert "denied to user 'victor' (groups: viewers)" in decision.reason


def test_deny_wins_over_allow_in_any_order() -> None:
    door, env = Subject(SubjectType.DEVICE, DOOR), Subject(SubjectType.DEVICE, ENV)
    for engine in (_rules(ALLOW_OWN, DENY_DOOR_ALERTS), _rules(DENY_DOOR_ALERTS, ALLOW_OWN)):
        denied = engine.check(door, "c", f"aurora/sensors/{DOOR}/alerts", W)
        assert not denied.allowed
        assert "door 3 raises no alerts" in denied.reason
        assert "test.json: $.t.mqtt.acl.rules[" in denied.reason
        assert engine.check(door, "c", f"aurora/sensors/{DOOR}/status", W).allowed
        assert engine.check(env, "c", f"aurora/sensors/{ENV}/alerts", W).allowed


def test_nothing_matching_is_a_deny() -> None:
    decision = _rules().check(Subject(SubjectType.DEVICE, DOOR), "c", f"aurora/sensors/{DOOR}/x", W)
    assert not decision.allowed
    assert "no rule allows" in decision.reason


def test_a_rule_without_the_role_permission_allows_nothing() -> None:
    engine = _rules(ALLOW_OWN, roles='"type_permissions": {"device": ["read"]}')
    decision = engine.check(Subject(SubjectType.DEVICE, DOOR), "c", f"aurora/sensors/{DOOR}/x", W)
    assert not decision.allowed
    assert "holds no 'publish' permission" in decision.reason


def test_client_id_substitution_is_validated_too() -> None:
    rule = '{"subjects": {"types": ["device"]}, "topics": ["clients/%c/#"], "actions": ["publish"]}'
    engine = _rules(rule)
    door = Subject(SubjectType.DEVICE, DOOR)
    assert engine.check(door, "door-3-client", "clients/door-3-client/x", W).allowed
    assert not engine.check(door, "other", "clients/door-3-client/x", W).allowed
    assert not engine.check(door, "+", "clients/+/x", W).allowed
    assert not engine.check(door, "#", "clients/x", W).allowed
    assert not engine.check(door, "", "clients//x", W).allowed


@pytest.mark.parametrize(
    ("who", "superuser"),
    [
        (BACKEND, True),
        (OTHER_BACKEND, False),
        (PROBE, False),
        (DOOR, False),
        (ADMIN, True),
        (service("svc-admin", "mqtt.admin"), True),
        (VIEWER, False),
        (TWIN, False),
        (user("eve", "managers"), False),
    ],
)
def test_superusers_come_from_roles(who: str | Subject, superuser: bool) -> None:
    """Among certificate identities only the site's backend; among tokens, the roles'."""
    subject = IDENTITIES.subject(who) if isinstance(who, str) else who
    assert subject is not None
    assert ENGINE.superuser(subject).allowed is superuser


def test_identities_of_a_site() -> None:
    assert IDENTITIES.subject(BACKEND) == Subject(SubjectType.BACKEND, BACKEND)
    assert IDENTITIES.subject(PROBE) == Subject(SubjectType.PROBE, PROBE)
    assert IDENTITIES.subject(DOOR) == Subject(SubjectType.DEVICE, DOOR)
    assert SiteIdentities("b").subject(BACKEND) == Subject(SubjectType.DEVICE, BACKEND)


def test_cached_decisions_are_the_decisions() -> None:
    """The cache answers exactly what the rules decide, the second time from memory."""
    engine = PolicyEngine(bench_rules())
    for who, topic, acc, _ in GOLDEN + DEVICE_RULES:
        subject = IDENTITIES.subject(who) if isinstance(who, str) else who
        if subject is None:
            continue
        first = engine.check(subject, "c", topic, acc)
        assert first == engine.decide(subject, "c", topic, acc)
        assert engine.check(subject, "c", topic, acc) is first


def test_the_cache_keys_on_the_whole_subject_and_client() -> None:
    engine = PolicyEngine(bench_rules())
    topic = "celine/telemetry/meter/meter-001/readings"
    assert engine.check(VIEWER, "c", topic, S).allowed
    # Same id, other groups: decided afresh, not served from the viewer's answer.
    assert not engine.check(user("victor"), "c", topic, S).allowed
    rule = '{"subjects": {"types": ["device"]}, "topics": ["clients/%c/#"], "actions": ["publish"]}'
    by_client = _rules(rule)
    door = Subject(SubjectType.DEVICE, DOOR)
    assert by_client.check(door, "door-3", "clients/door-3/x", W).allowed
    assert not by_client.check(door, "other", "clients/door-3/x", W).allowed


def test_the_cache_is_bounded_and_skips_long_topics() -> None:
    engine = PolicyEngine(bench_rules(), cache_size=2)
    door = Subject(SubjectType.DEVICE, DOOR)
    first = engine.check(door, "c", f"aurora/sensors/{DOOR}/a", W)
    assert engine.check(door, "c", f"aurora/sensors/{DOOR}/a", W) is first
    engine.check(door, "c", f"aurora/sensors/{DOOR}/b", W)
    engine.check(door, "c", f"aurora/sensors/{DOOR}/c", W)
    again = engine.check(door, "c", f"aurora/sensors/{DOOR}/a", W)  # evicted: decided anew
    assert again == first
    assert again is not first
    long_topic = f"aurora/sensors/{DOOR}/" + "x" * DECISION_CACHE_TOPIC_MAX
    long_first = engine.check(door, "c", long_topic, W)
    assert long_first.allowed
    assert engine.check(door, "c", long_topic, W) is not long_first
