"""The PUBLISH decoder's fast paths (one user property, none) agree with the general one,
and a PUBLISH carrying properties the client does not act on is still read right."""

from __future__ import annotations

import pytest

from backend.mqtt import ProtocolViolation
from backend.mqtt.codec import Publish, encode_publish
from backend.mqtt.reader import PacketReader

TOPIC = "aurora/sensors/esp32s3-lab-01/telemetry"


@pytest.mark.parametrize(
    "user",
    [
        (),
        (("aurora-trace", "esp32s3-lab-01:7:1700000000000000000"),),
        (("a", ""), ("", "b")),
        (("é", "ü" * 200),),  # a long value: two-byte lengths inside the property block
    ],
)
def test_publish_with_user_properties_round_trips(user: tuple[tuple[str, str], ...]) -> None:
    sent = Publish(TOPIC, b'{"value":1}', 1, 513, False, True, user)
    assert PacketReader().feed(encode_publish(sent)) == [sent]


def _publish_with_properties(block: bytes, payload: bytes = b"{}") -> bytes:
    topic = TOPIC.encode()
    body = len(topic).to_bytes(2, "big") + topic + (9).to_bytes(2, "big")
    body += bytes([len(block)]) + block + payload
    return bytes([0x32, len(body)]) + body


def test_other_properties_are_skipped_and_user_properties_kept() -> None:
    content_type = b"\x03" + (16).to_bytes(2, "big") + b"application/json"
    expiry = b"\x02" + (60).to_bytes(4, "big")
    subscription = b"\x0b\x81\x01"  # subscription identifier 129, a two-byte varint
    trace = b"\x26" + (1).to_bytes(2, "big") + b"k" + (1).to_bytes(2, "big") + b"v"
    (got,) = PacketReader().feed(
        _publish_with_properties(content_type + trace + expiry + subscription)
    )
    assert got == Publish(TOPIC, b"{}", 1, 9, False, False, (("k", "v"),))


@pytest.mark.parametrize(
    ("block", "why"),
    [
        (b"\x26\x00\x05k\x00\x01v", "string runs past"),  # name length beyond the block
        (b"\x7f\x00", "unknown property"),
        (b"\x02\x00\x00", "runs past the property length"),  # a U32 cut short
    ],
)
def test_broken_property_blocks_are_protocol_violations(block: bytes, why: str) -> None:
    with pytest.raises(ProtocolViolation, match=why):
        PacketReader().feed(_publish_with_properties(block, b""))
