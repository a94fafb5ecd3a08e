"""MQTT v5 packets as plain values, and the pure encoder from them to bytes.

No I/O, so the codec is tested without a broker (the httpcore/h11 split, DESIGN.md house
style); the decoder is :mod:`backend.mqtt.reader`. Only what a client needs is modelled
(OASIS MQTT 5.0, chapter 3): CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, PINGREQ,
PINGRESP, DISCONNECT. QoS 2 is not spoken: a client of this layer never subscribes or
publishes above QoS 1.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

from backend.mqtt.errors import ProtocolViolation

#: Largest Remaining Length MQTT can express (four varint bytes).
MAX_REMAINING = 268_435_455


class PacketType(IntEnum):
    """Control packet types (MQTT 5.0, 2.1.2)."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    SUBSCRIBE = 8
    SUBACK = 9
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14


class Prop(IntEnum):
    """The property identifiers this layer writes or reads by name (MQTT 5.0, 2.2.2.2)."""

    SESSION_EXPIRY_INTERVAL = 0x11
    ASSIGNED_CLIENT_IDENTIFIER = 0x12
    SERVER_KEEP_ALIVE = 0x13
    REASON_STRING = 0x1F
    RECEIVE_MAXIMUM = 0x21
    TOPIC_ALIAS_MAXIMUM = 0x22
    MAXIMUM_QOS = 0x24
    USER_PROPERTY = 0x26
    MAXIMUM_PACKET_SIZE = 0x27


#: Wire type of every property identifier, so unknown ones are skipped correctly.
WIRE_BYTE, WIRE_U16, WIRE_U32, WIRE_VARINT, WIRE_UTF8, WIRE_BINARY, WIRE_PAIR = range(7)
PROPERTY_WIRE_TYPES: dict[int, int] = {
    0x01: WIRE_BYTE,  # payload format indicator
    0x02: WIRE_U32,  # message expiry interval
    0x03: WIRE_UTF8,  # content type
    0x08: WIRE_UTF8,  # response topic
    0x09: WIRE_BINARY,  # correlation data
    0x0B: WIRE_VARINT,  # subscription identifier
    0x11: WIRE_U32,
    0x12: WIRE_UTF8,
    0x13: WIRE_U16,
    0x15: WIRE_UTF8,  # authentication method
    0x16: WIRE_BINARY,  # authentication data
    0x17: WIRE_BYTE,  # request problem information
    0x18: WIRE_U32,  # will delay interval
    0x19: WIRE_BYTE,  # request response information
    0x1A: WIRE_UTF8,  # response information
    0x1C: WIRE_UTF8,  # server reference
    0x1F: WIRE_UTF8,
    0x21: WIRE_U16,
    0x22: WIRE_U16,
    0x23: WIRE_U16,  # topic alias
    0x24: WIRE_BYTE,
    0x25: WIRE_BYTE,  # retain available
    0x26: WIRE_PAIR,
    0x27: WIRE_U32,
    0x28: WIRE_BYTE,  # wildcard subscription available
    0x29: WIRE_BYTE,  # subscription identifiers available
    0x2A: WIRE_BYTE,  # shared subscription available
}

UserProperties = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Properties:
    """The properties of one packet: numbers and strings by identifier, user pairs apart."""

    values: dict[int, int | str | bytes] = field(default_factory=dict)
    user: UserProperties = ()

    def get(self, prop: Prop) -> int | str | bytes | None:
        """The value of ``prop``, or None when absent."""
        return self.values.get(prop)


NO_PROPERTIES = Properties()


@dataclass(frozen=True, slots=True)
class Will:
    """A last will: published by the broker when the client vanishes (or asks for it)."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    user_properties: UserProperties = ()


@dataclass(frozen=True, slots=True)
class Connect:
    """CONNECT (3.1)."""

    client_id: str
    keepalive_s: int = 60
    clean_start: bool = True
    session_expiry_s: int = 0
    receive_maximum: int | None = None
    will: Will | None = None
    username: str | None = None
    password: bytes | None = None


@dataclass(frozen=True, slots=True)
class ConnAck:
    """CONNACK (3.2): reason 0 is success, >= 0x80 a refusal."""

    session_present: bool
    reason: int
    properties: Properties = NO_PROPERTIES


@dataclass(slots=True)
class Publish:
    """PUBLISH (3.3), either direction. ``packet_id`` is 0 at QoS 0.

    Not frozen, unlike the other packets: one is built per message received, and a frozen
    dataclass's ``__init__`` (``object.__setattr__`` per field) cost five times as much.
    Treat it as immutable all the same.
    """

    topic: str
    payload: bytes
    qos: int = 0
    packet_id: int = 0
    dup: bool = False
    retain: bool = False
    user_properties: UserProperties = ()


@dataclass(frozen=True, slots=True)
class PubAck:
    """PUBACK (3.4): reason 0 success, 16 no matching subscribers, >= 0x80 refused."""

    packet_id: int
    reason: int = 0


@dataclass(frozen=True, slots=True)
class Subscribe:
    """SUBSCRIBE (3.8): ``(filter, maximum QoS)`` pairs."""

    packet_id: int
    filters: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class SubAck:
    """SUBACK (3.9): one reason code per filter (the granted QoS, or >= 0x80 refused)."""

    packet_id: int
    reasons: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PingReq:
    """PINGREQ (3.12)."""


@dataclass(frozen=True, slots=True)
class PingResp:
    """PINGRESP (3.13)."""


@dataclass(frozen=True, slots=True)
class Disconnect:
    """DISCONNECT (3.14): 0 normal, 4 "disconnect with will message", others errors."""

    reason: int = 0
    properties: Properties = NO_PROPERTIES


Packet = Connect | ConnAck | Publish | PubAck | Subscribe | SubAck | PingReq | PingResp | Disconnect

# -- encoding ----------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    if not 0 <= value <= MAX_REMAINING:
        raise ProtocolViolation(f"variable byte integer out of range: {value}")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _utf8(text: str) -> bytes:
    raw = text.encode()
    if len(raw) > 0xFFFF:
        raise ProtocolViolation(f"string longer than 65,535 bytes: {text[:40]!r}...")
    return len(raw).to_bytes(2, "big") + raw


def _binary(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise ProtocolViolation("binary data longer than 65,535 bytes")
    return len(data).to_bytes(2, "big") + data


def _properties(values: dict[int, int | str | bytes], user: UserProperties = ()) -> bytes:
    out = bytearray()
    for ident, value in values.items():
        kind = PROPERTY_WIRE_TYPES[ident]
        out.append(ident)
        if kind == WIRE_BYTE:
            out.append(int(value))  # type: ignore[arg-type]
        elif kind == WIRE_U16:
            out += int(value).to_bytes(2, "big")  # type: ignore[arg-type]
        elif kind == WIRE_U32:
            out += int(value).to_bytes(4, "big")  # type: ignore[arg-type]
        elif kind == WIRE_VARINT:
            out += _varint(int(value))  # type: ignore[arg-type]
        elif kind == WIRE_UTF8:
            out += _utf8(str(value))
        else:
            out += _binary(bytes(value))  # type: ignore[arg-type]
    for name, value in user:
        out.append(Prop.USER_PROPERTY)
        out += _utf8(name) + _utf8(value)
    return _varint(len(out)) + bytes(out)


_EMPTY_PROPERTIES = b"\x00"


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + _varint(len(body)) + body


def encode(packet: Packet) -> bytes:
    """The bytes of ``packet`` on the wire."""
    if isinstance(packet, Publish):
        return encode_publish(packet)
    if isinstance(packet, PubAck):
        return encode_puback(packet.packet_id, packet.reason)
    if isinstance(packet, Connect):
        return _encode_connect(packet)
    if isinstance(packet, Subscribe):
        body = packet.packet_id.to_bytes(2, "big") + _EMPTY_PROPERTIES
        for topic_filter, qos in packet.filters:
            body += _utf8(topic_filter) + bytes((qos,))
        return _packet(0x82, body)
    if isinstance(packet, PingReq):
        return b"\xc0\x00"
    if isinstance(packet, PingResp):
        return b"\xd0\x00"
    if isinstance(packet, Disconnect):
        if packet.reason == 0 and not packet.properties.values:
            return b"\xe0\x00"
        return _packet(0xE0, bytes((packet.reason,)) + _properties(packet.properties.values))
    if isinstance(packet, ConnAck):
        body = bytes((int(packet.session_present), packet.reason))
        return _packet(0x20, body + _properties(packet.properties.values, packet.properties.user))
    if isinstance(packet, SubAck):
        body = packet.packet_id.to_bytes(2, "big") + _EMPTY_PROPERTIES + bytes(packet.reasons)
        return _packet(0x90, body)
    raise TypeError(f"not a packet: {packet!r}")  # pragma: no cover


def _encode_connect(packet: Connect) -> bytes:
    flags = 0x02 if packet.clean_start else 0
    values: dict[int, int | str | bytes] = {}
    if packet.session_expiry_s:
        values[Prop.SESSION_EXPIRY_INTERVAL] = packet.session_expiry_s
    if packet.receive_maximum is not None:
        values[Prop.RECEIVE_MAXIMUM] = packet.receive_maximum
    payload = _utf8(packet.client_id)
    will = packet.will
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        payload += _properties({}, will.user_properties) + _utf8(will.topic)
        payload += _binary(will.payload)
    if packet.username is not None:
        flags |= 0x80
        payload += _utf8(packet.username)
    if packet.password is not None:
        flags |= 0x40
        payload += _binary(packet.password)
    header = b"\x00\x04MQTT\x05" + bytes((flags,)) + packet.keepalive_s.to_bytes(2, "big")
    return _packet(0x10, header + _properties(values) + payload)


def encode_publish(packet: Publish) -> bytes:
    """The bytes of a PUBLISH (the hot direction of a device link)."""
    first = 0x30 | (packet.qos << 1) | (0x08 if packet.dup else 0) | int(packet.retain)
    body = _utf8(packet.topic)
    if packet.qos:
        body += packet.packet_id.to_bytes(2, "big")
    if packet.user_properties:
        body += _properties({}, packet.user_properties)
    else:
        body += _EMPTY_PROPERTIES
    return _packet(first, body + packet.payload)


_PUBACK = struct.Struct(">BBH")


def encode_puback(packet_id: int, reason: int = 0) -> bytes:
    """A PUBACK; reason 0 uses the short form (MQTT 5.0, 3.4.2.1)."""
    if reason == 0:
        return _PUBACK.pack(0x40, 2, packet_id)
    return _PUBACK.pack(0x40, 3, packet_id) + bytes((reason,))
