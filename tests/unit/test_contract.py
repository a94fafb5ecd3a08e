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


# -- hostile structure (issue 11.1) and the cases the seed leaves open -------------------

DOOR = "aurora/access/stm32f401-door-03/badge_event"
STATUS = "aurora/sensors/stm32f401-door-01/status"
ALERTS = "aurora/sensors/esp32s3-env-01/alerts"


def status_payload(extra: str) -> bytes:
    return (
        '{"device_type":"access_control_node","board_family":"stm32f401",'
        '"firmware_stack":"rust_embassy","firmware_version":"0.1.0",'
        f'"device_id":"stm32f401-door-01"{extra}}}'
    ).encode()


@pytest.mark.parametrize(
    "payload",
    [
        b"[" * 1000 + b"]" * 1000,  # the payload of issue 11.1: 2,000 bytes
        b"[" * 2000,  # unbalanced
        b"{" * 2000,
        b'{"a":' * 600 + b"1" + b"}" * 600,
        b'{"device_id":"esp32s3-env-01","x":' + b"[" * 1500 + b"]" * 1500 + b"}",
    ],
    ids=["arrays", "open-arrays", "open-objects", "objects", "nested-field"],
)
@pytest.mark.parametrize("topic", [TELEMETRY, ALERTS, STATUS, DOOR])
def test_deep_nesting_is_refused_before_any_parser_recurses(topic: str, payload: bytes) -> None:
    assert len(payload) <= 4096
    with pytest.raises(ContractViolation) as caught:
        decode_upstream(topic, payload)
    assert caught.value.reason is RejectReason.TOO_DEEP
    assert "limit 32" in caught.value.detail


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    details = "[" * 500 + '\\"{' * 100
    payload = (
        '{"device_id":"esp32s3-env-01","type":"probe","severity":"low",'
        f'"event_details":"{details}"}}'
    )
    _, message = decode_upstream(ALERTS, payload.encode())
    assert message.event_details.startswith("[[[")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("topic", "payload", "field"),
    [
        (
            ALERTS,
            b'{"device_id":"esp32s3-env-01","type":"x","severity":"low",'
            b'"event_details":"","device_id":"esp32s3-env-01"}',
            "device_id",
        ),
        (
            # The attack: the backend checks the last device_id, a first-key reader sees d2.
            ALERTS,
            b'{"device_id":"other-device","type":"x","severity":"low",'
            b'"event_details":"","device_id":"esp32s3-env-01"}',
            "device_id",
        ),
        (
            TELEMETRY,
            b'{"device_id":"esp32s3-env-01","metric":"t","value":1,"value":2,"unit":"C"}',
            "value",
        ),
    ],
)
def test_duplicate_keys_are_refused(topic: str, payload: bytes, field: str) -> None:
    with pytest.raises(ContractViolation) as caught:
        decode_upstream(topic, payload)
    assert caught.value.reason is RejectReason.DUPLICATE_KEY
    assert caught.value.field == field


def test_firmware_hash_null_is_refused_but_absence_is_no_measured_boot() -> None:
    _, message = decode_upstream(STATUS, status_payload(""))
    assert message.firmware_hash is None  # type: ignore[union-attr]
    with pytest.raises(ContractViolation) as caught:
        decode_upstream(STATUS, status_payload(',"firmware_hash":null'))
    assert caught.value.field == "firmware_hash"
    assert "omit firmware_hash" in caught.value.detail
    with pytest.raises(ContractViolation) as upper:
        decode_upstream(STATUS, status_payload(f',"firmware_hash":"{"AB" * 32}"'))
    assert upper.value.reason is RejectReason.BAD_VALUE


@pytest.mark.parametrize(
    ("uid", "accepted"),
    [
        ("0455AF21", True),  # 4 bytes, ISO 14443 single size
        ("0455af21", True),  # readers differ in hex case
        ("04A1B2C3D4", True),  # 5 bytes, EM4100
        ("04A1B2C3D4E5F6", True),  # 7 bytes, ISO 14443 double size
        ("E004015012345678", True),  # 8 bytes, ISO 15693
        ("04a1b2c3d4e5f60708AA", True),  # 10 bytes, ISO 14443 triple size
        ("0455AF2", False),  # odd digit count: not whole bytes
        ("04A1B2C3D4E5F", False),
        ("04A1B2", False),  # 3 bytes: too short to identify a badge
        ("04a1b2c3d4e5f60708AABB", False),  # 11 bytes
        ("0455AF2G", False),
        ("", False),
    ],
)
def test_badge_uids_are_4_to_10_whole_bytes_of_hex(uid: str, accepted: bool) -> None:
    payload = f'{{"device_id":"stm32f401-door-03","uid":"{uid}","event":"badge_read"}}'.encode()
    if accepted:
        _, message = decode_upstream(DOOR, payload)
        assert message.uid == uid  # type: ignore[union-attr]
    else:
        with pytest.raises(ContractViolation) as caught:
            decode_upstream(DOOR, payload)
        assert caught.value.field == "uid"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"device_id":"esp32s3-env-01","metric":"t","value":-Infinity,"unit":"C"}', "non_finite"),
        (b"\xef\xbb\xbf{}", "not_json"),
        (b'{"device_id":"esp32s3-env-01","metric":"t\\ud800","value":1,"unit":"C"}', "not_json"),
        (b"", "not_json"),
        (b"null", "not_object"),
    ],
)
def test_odd_json_is_a_violation_never_an_exception(payload: bytes, reason: str) -> None:
    with pytest.raises(ContractViolation) as caught:
        decode_upstream(TELEMETRY, payload)
    assert caught.value.reason.value == reason
