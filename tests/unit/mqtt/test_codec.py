"""The MQTT v5 codec: packets to bytes and back, framing across arbitrary chunks."""

from __future__ import annotations

import pytest

from backend.mqtt import ProtocolViolation
from backend.mqtt.codec import (
    ConnAck,
    Connect,
    Disconnect,
    PingResp,
    Prop,
    Properties,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
    Will,
    encode,
    encode_puback,
)
from backend.mqtt.reader import PacketReader


def test_publish_round_trips_with_user_properties_and_flags() -> None:
    sent = Publish(
        "aurora/sensors/d1/telemetry", b'{"v":1}', 1, 77, True, False, (("aurora-trace", "c:1:2"),)
    )
    assert PacketReader().feed(encode(sent)) == [sent]


def test_publish_without_properties_at_qos_zero() -> None:
    sent = Publish("t", b"x" * 300)
    assert PacketReader().feed(encode(sent)) == [sent]


def test_reader_reassembles_packets_split_anywhere() -> None:
    packets = [Publish(f"t/{i}", bytes([i]) * (i * 50), 1, i + 1) for i in range(1, 6)]
    wire = b"".join(encode(p) for p in packets) + encode(PubAck(9, 135))
    reader = PacketReader()
    got = []
    for i in range(0, len(wire), 7):
        got += reader.feed(wire[i : i + 7])
    assert got == [*packets, PubAck(9, 135)]


def test_puback_short_form_means_success() -> None:
    assert encode_puback(5) == b"\x40\x02\x00\x05"
    assert PacketReader().feed(b"\x40\x02\x00\x05") == [PubAck(5, 0)]


def test_connack_properties_are_read() -> None:
    sent = ConnAck(True, 0, Properties({Prop.RECEIVE_MAXIMUM: 20, Prop.SERVER_KEEP_ALIVE: 30}))
    (got,) = PacketReader().feed(encode(sent))
    assert isinstance(got, ConnAck)
    assert got.session_present and got.properties.get(Prop.RECEIVE_MAXIMUM) == 20


def test_connect_encodes_session_will_and_clean_start() -> None:
    will = Will("aurora/sensors/d1/status", b"{}", 1, False, (("aurora-presence", "offline"),))
    wire = encode(Connect("d1", 30, False, 3600, 1000, will))
    assert wire[0] == 0x10
    # protocol name, version 5, flags: will QoS 1 (0x08) + will (0x04), no clean start
    assert wire[2:10] == b"\x00\x04MQTT\x05\x0c"
    assert b"aurora-presence" in wire and b"d1" in wire


def test_suback_and_disconnect_and_ping() -> None:
    wire = encode(SubAck(3, (1, 0x87))) + encode(Disconnect(4)) + b"\xd0\x00"
    assert PacketReader().feed(wire) == [SubAck(3, (1, 0x87)), Disconnect(4), PingResp()]


def test_subscribe_encoding_lists_every_filter() -> None:
    wire = encode(Subscribe(1, (("$share/g/a/#", 1), ("b", 0))))
    assert wire[0] == 0x82 and b"$share/g/a/#\x01" in wire and wire.endswith(b"b\x00")


@pytest.mark.parametrize(
    "wire",
    [
        b"\x30\xff\xff\xff\xff\x01",  # remaining length longer than four bytes
        b"\x30\x03\x00\x05a",  # topic runs past the packet
        b"\x36\x02\x00\x00",  # QoS 3
        b"\xf0\x00",  # AUTH / reserved: not spoken by this client
    ],
)
def test_malformed_bytes_are_a_protocol_violation(wire: bytes) -> None:
    with pytest.raises(ProtocolViolation):
        PacketReader().feed(wire)


def test_incomplete_length_waits_for_more() -> None:
    reader = PacketReader()
    packet = encode(Publish("t", b"y" * 200))
    assert reader.feed(packet[:2]) == []
    assert reader.feed(packet[2:]) == [Publish("t", b"y" * 200)]
