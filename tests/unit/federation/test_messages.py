"""Federation payloads, severity gate, dedup keys and IOC normalisation (pure)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from backend.contract import Severity
from backend.federation.errors import FederationMessageError
from backend.federation.messages import (
    MAX_IOCS,
    FederatedAlert,
    FederatedAudit,
    HealthPayload,
    IocShare,
    alert_subject,
    build_federated_alert,
    decode_health,
    decode_mesh_message,
    dedup_key,
    encode_message,
    health_subject,
    infer_ioc_type,
    nats_msg_id,
    normalize_iocs,
    should_federate,
)

NOW = datetime(2026, 11, 22, 22, 0, 0, 123456, tzinfo=UTC)


@dataclass
class Record:
    id: str = "7f1d0e52-0000-4000-8000-000000000001"
    type: str = "c2_beacon"
    severity: str = "critical"
    title: str = "C2 beacon to 203.0.113.9"
    description: str | None = None
    device_id: str | None = "esp32s3-env-01"
    iocs: Any = field(default_factory=lambda: ["203.0.113.9", {"domain": "Evil.Example"}])
    created_at: datetime = NOW


@pytest.mark.parametrize(
    ("severity", "minimum", "expected"),
    [
        ("critical", "high", True),
        ("high", "high", True),
        ("medium", "high", False),
        ("low", "high", False),
        ("info", "info", True),
        (Severity.LOW, Severity.MEDIUM, False),
        ("medium", "low", True),
    ],
)
def test_severity_gate(severity: str, minimum: str, expected: bool) -> None:
    assert should_federate(severity, minimum) is expected


def test_unknown_severity_is_an_error_not_a_silent_drop() -> None:
    with pytest.raises(ValueError, match="urgent"):
        should_federate("urgent", "high")


def test_subjects() -> None:
    assert health_subject("b") == "aurora.federation.health.b"
    assert alert_subject(Severity.CRITICAL) == "aurora.alerts.federation.critical"


def test_dedup_key_depends_on_origin_and_id_only() -> None:
    key = dedup_key("b", "42")
    assert key == dedup_key("b", "42") and len(key) == 64
    assert key != dedup_key("a", "42") and key != dedup_key("b", "43")
    # no ambiguity from the separator landing inside an id
    assert dedup_key("b", "x:1") != dedup_key("b:x", "1")
    assert nats_msg_id("b", "42") == "b:42"


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("203.0.113.9", "ip"),
        ("2001:db8::1", "ip"),
        ("10.0.0.0/8", "cidr"),
        ("https://evil.example/x", "url"),
        ("ops@evil.example", "email"),
        ("d41d8cd98f00b204e9800998ecf8427e", "md5"),
        ("da39a3ee5e6b4b0d3255bfef95601890afd80709", "sha1"),
        ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "sha256"),
        ("c2.evil.example", "domain"),
        ("just words", "unknown"),
    ],
)
def test_ioc_type_inference(value: str, kind: str) -> None:
    assert infer_ioc_type(value) == kind


def test_iocs_normalise_to_one_shape() -> None:
    raw = [
        "203.0.113.9",
        "domain:C2.Evil.Example",
        {"type": "IPv4", "value": " 198.51.100.7 "},
        {
            "ioc_type": "sha-256",
            "indicator": "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        },
        {"url": "http://c2.evil.example/beacon"},
        ["hostname", "relay.evil.example"],
        "2001:0db8:0000:0000:0000:0000:0000:0001",
        {"value": "ops@evil.example"},
        # dropped: empty, unreadable, bool, nested junk
        "",
        {"type": "ip"},
        True,
        {"a": 1, "b": 2},
        ["too", "many", "parts"],
        # duplicates of earlier entries after canonicalisation
        {"type": "ip", "value": "203.0.113.9"},
        "c2.evil.example",
    ]
    assert normalize_iocs(raw) == [
        {"type": "ip", "value": "203.0.113.9"},
        {"type": "domain", "value": "c2.evil.example"},
        {"type": "ip", "value": "198.51.100.7"},
        {
            "type": "sha256",
            "value": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        },
        {"type": "url", "value": "http://c2.evil.example/beacon"},
        {"type": "domain", "value": "relay.evil.example"},
        {"type": "ip", "value": "2001:db8::1"},
        {"type": "email", "value": "ops@evil.example"},
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, []),
        (17, []),
        ("203.0.113.9", [{"type": "ip", "value": "203.0.113.9"}]),
        ({"type": "domain", "value": "x.example"}, [{"type": "domain", "value": "x.example"}]),
        # A typed string as the local alert path stores it keeps its type (seed 002:
        # "IOCs normalize to the canonical dict shape"); it arrived as type unknown.
        ({"value": "ip:203.0.113.9"}, [{"type": "ip", "value": "203.0.113.9"}]),
        ({"value": "domain:C2.Evil.Example"}, [{"type": "domain", "value": "c2.evil.example"}]),
        ({"value": "http://x.example/a"}, [{"type": "url", "value": "http://x.example/a"}]),
    ],
)
def test_single_iocs_and_junk(raw: object, expected: list[dict[str, str]]) -> None:
    assert normalize_iocs(raw) == expected


def test_ioc_list_is_bounded() -> None:
    many = [f"10.0.{i // 256}.{i % 256}" for i in range(MAX_IOCS * 2)]
    assert len(normalize_iocs(many)) == MAX_IOCS


def test_build_federated_alert_stamps_origin_and_round_trips() -> None:
    alert = build_federated_alert(Record(), "b", now=NOW)
    assert alert.origin_site == "b"
    assert alert.origin_alert_id == Record().id
    assert alert.severity is Severity.CRITICAL
    assert alert.subject == "aurora.alerts.federation.critical"
    assert alert.msg_id == f"b:{Record().id}"
    assert alert.dedup_key == dedup_key("b", Record().id)
    assert alert.iocs == [
        {"type": "ip", "value": "203.0.113.9"},
        {"type": "domain", "value": "evil.example"},
    ]
    decoded = decode_mesh_message(alert.subject, encode_message(alert))
    assert decoded == alert


def test_naive_created_at_is_taken_as_utc() -> None:
    alert = build_federated_alert(Record(created_at=NOW.replace(tzinfo=None)), "a", now=NOW)
    assert alert.created_at == NOW


def test_peer_iocs_are_normalised_on_receipt() -> None:
    alert = build_federated_alert(Record(iocs=[]), "b", now=NOW)
    raw = json.loads(encode_message(alert))
    raw["iocs"] = ["EVIL.example", ["ip", "203.0.113.9"]]
    raw["future_field"] = "ignored"
    decoded = decode_mesh_message(alert.subject, json.dumps(raw).encode())
    assert isinstance(decoded, FederatedAlert)
    assert decoded.iocs == [
        {"type": "domain", "value": "evil.example"},
        {"type": "ip", "value": "203.0.113.9"},
    ]


def test_other_mesh_messages_round_trip() -> None:
    share = IocShare(origin_site="a", share_id="s1", iocs=["1.2.3.4"], shared_at=NOW)
    audit = FederatedAudit(origin_site="a", event_id="e1", type="link_down", at=NOW)
    assert decode_mesh_message("aurora.ioc_sharing", encode_message(share)) == share
    assert decode_mesh_message("aurora.audit", encode_message(audit)) == audit
    assert share.iocs == [{"type": "ip", "value": "1.2.3.4"}]
    assert audit.msg_id == "a:audit:e1"
    # a share made for alert X must not be dropped as a duplicate of X's own message
    alert_share = IocShare(origin_site="b", share_id=Record().id, iocs=["1.2.3.4"], shared_at=NOW)
    assert alert_share.msg_id != build_federated_alert(Record(), "b", now=NOW).msg_id


@pytest.mark.parametrize(
    ("subject", "data", "reason"),
    [
        ("aurora.alerts.federation.critical", b"{not json", "not JSON"),
        ("aurora.alerts.federation.critical", b"\xff\xfe", "not JSON"),
        ("aurora.alerts.federation.critical", b'{"origin_site": "b"}', "origin_alert_id"),
        ("aurora.something.else", b"{}", "not a federation subject"),
    ],
)
def test_unreadable_messages_say_why(subject: str, data: bytes, reason: str) -> None:
    with pytest.raises(FederationMessageError, match=reason):
        decode_mesh_message(subject, data)


def test_severity_must_match_the_subject() -> None:
    alert = build_federated_alert(Record(), "b", now=NOW)
    with pytest.raises(FederationMessageError, match="does not match the subject"):
        decode_mesh_message("aurora.alerts.federation.low", encode_message(alert))


def test_bad_origin_site_is_refused() -> None:
    raw = json.loads(encode_message(build_federated_alert(Record(), "b", now=NOW)))
    raw["origin_site"] = "B/../x"
    with pytest.raises(FederationMessageError, match="origin_site"):
        decode_mesh_message("aurora.alerts.federation.critical", json.dumps(raw).encode())


def test_health_payload() -> None:
    payload = HealthPayload(site_id="b", sent_at=NOW, jetstream_domain="b")
    assert decode_health(encode_message(payload)) == payload
    naive = json.dumps({"site_id": "b", "sent_at": "2026-11-22T22:00:00"}).encode()
    assert decode_health(naive).sent_at.tzinfo is not None
    with pytest.raises(FederationMessageError, match="site_id"):
        decode_health(b'{"sent_at": "2026-11-22T22:00:00Z"}')
