"""Seed 001's example payloads are golden vectors: each must decode, and re-encode equal."""

import json

import pytest

from backend.contract import ContractViolation, RejectReason, decode_upstream, encode

GOLDEN = [
    (
        "aurora/sensors/esp32s3-env-01/status",
        '{"device_type":"environmental_presence","board_family":"esp32s3",'
        '"firmware_stack":"rust_embassy","firmware_version":"0.1.0","device_id":"esp32s3-env-01"}',
    ),
    (
        "aurora/sensors/stm32f401-door-01/status",
        '{"device_type":"access_control_node","board_family":"stm32f401",'
        '"firmware_stack":"rust_embassy","firmware_version":"0.1.0","firmware_hash":"'
        + "ab" * 32
        + '","device_id":"stm32f401-door-01"}',
    ),
    (
        "aurora/sensors/esp32s3-env-01/telemetry",
        '{"device_id":"esp32s3-env-01","metric":"temperature_c","value":-4.25,"unit":"C"}',
    ),
    (
        "aurora/sensors/esp32s3-env-01/alerts",
        '{"device_id":"esp32s3-env-01","type":"sensor_unhealthy","severity":"critical",'
        '"event_details":"AHT21B unhealthy: repeated sensor timeout"}',
    ),
    (
        "aurora/access/stm32f401-door-03/badge_event",
        '{"device_id":"stm32f401-door-03","uid":"0455AF21","event":"badge_read"}',
    ),
]


@pytest.mark.parametrize(("topic", "payload"), GOLDEN)
def test_golden_vectors_decode_and_round_trip(topic: str, payload: str) -> None:
    parsed, message = decode_upstream(topic, payload.encode())
    assert parsed.device_id == topic.split("/")[2]
    assert json.loads(encode(message)) == json.loads(payload)


TELEMETRY = "aurora/sensors/esp32s3-env-01/telemetry"


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (TELEMETRY, b"not json", RejectReason.NOT_JSON),
        (TELEMETRY, b"\xff\xfe", RejectReason.NOT_JSON),
        (TELEMETRY, b"[1, 2]", RejectReason.NOT_OBJECT),
        (
            TELEMETRY,
            b'{"device_id":"esp32s3-env-01","metric":"t","value":NaN,"unit":"C"}',
            RejectReason.NON_FINITE,
        ),
        (
            TELEMETRY,
            b'{"device_id":"esp32s3-env-01","metric":"t","value":Infinity,"unit":"C"}',
            RejectReason.NON_FINITE,
        ),
        (
            TELEMETRY,
            b'{"device_id":"esp32s3-env-01","metric":"t","value":"1","unit":"C"}',
            RejectReason.WRONG_TYPE,
        ),
        (
            TELEMETRY,
            b'{"device_id":"esp32s3-env-01","metric":"t","value":true,"unit":"C"}',
            RejectReason.WRONG_TYPE,
        ),
        (
            TELEMETRY,
            b'{"device_id":"esp32s3-env-01","metric":"t","value":1,"unit":"C","x":1}',
            RejectReason.UNKNOWN_FIELD,
        ),
        (
            TELEMETRY,
            b'{"device_id":"esp32s3-env-01","metric":"t","unit":"C"}',
            RejectReason.MISSING_FIELD,
        ),
        (
            TELEMETRY,
            b'{"device_id":"other","metric":"t","value":1,"unit":"C"}',
            RejectReason.DEVICE_ID_MISMATCH,
        ),
        (TELEMETRY, b"{" + b" " * 5000 + b"}", RejectReason.OVERSIZE),
        ("aurora/sensors/bad+id/telemetry", b"{}", RejectReason.BAD_DEVICE_ID),
        ("aurora/sensors/b\u00e4d/telemetry", b"{}", RejectReason.BAD_DEVICE_ID),
        ("aurora/sensors/" + "x" * 65 + "/telemetry", b"{}", RejectReason.BAD_DEVICE_ID),
        ("aurora/sensors/ok/firmware", b"{}", RejectReason.UNKNOWN_TOPIC),
        ("aurora/access/ok/command", b"{}", RejectReason.UNKNOWN_TOPIC),
        ("c2/beacon", b"{}", RejectReason.UNKNOWN_TOPIC),
    ],
)
def test_bad_input_is_rejected_with_its_reason(
    topic: str, payload: bytes, reason: RejectReason
) -> None:
    with pytest.raises(ContractViolation) as caught:
        decode_upstream(topic, payload)
    assert caught.value.reason is reason
