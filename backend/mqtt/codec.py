"""MQTT v5 packets as plain values, and the pure encoder/decoder between them and bytes.

No I/O: :class:`PacketReader` is fed whatever the socket gave and returns whole packets,
so the codec is tested without a broker (the httpcore/h11 split, DESIGN.md house style).
Only what a client needs is modelled (OASIS MQTT 5.0, chapter 3): CONNECT, CONNACK, PUBLISH,
PUBACK, SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT. QoS 2 is not spoken: a client of
this layer never subscribes or publishes above QoS 1.

The decoder parses a PUBLISH with a handful of slices and ``int.from_bytes``; only the user
properties are kept of its properties (the ``aurora-trace`` the load tool sets), which is
what makes the ingest hot path cheap.
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


# Wire type of every property identifier, so unknown ones are skipped correctly.
_BYTE, _U16, _U32, _VARINT, _UTF8, _BINARY, _PAIR = range(7)
_PROPERTY_TYPES: dict[int, int] = {
    0x01: _BYTE,  # payload format indicator
    0x02: _U32,  # message expiry interval
    0x03: _UTF8,  # content type
    0x08: _UTF8,  # response topic
    0x09: _BINARY,  # correlation data
    0x0B: _VARINT,  # subscription identifier
    0x11: _U32,
    0x12: _UTF8,
    0x13: _U16,
    0x15: _UTF8,  # authentication method
    0x16: _BINARY,  # authentication data
    0x17: _BYTE,  # request problem information
    0x18: _U32,  # will delay interval
    0x19: _BYTE,  # request response information
    0x1A: _UTF8,  # response information
    0x1C: _UTF8,  # server reference
    0x1F: _UTF8,
    0x21: _U16,
    0x22: _U16,
    0x23: _U16,  # topic alias
    0x24: _BYTE,
    0x25: _BYTE,  # retain available
    0x26: _PAIR,
    0x27: _U32,
    0x28: _BYTE,  # wildcard subscription available
    0x29: _BYTE,  # subscription identifiers available
    0x2A: _BYTE,  # shared subscription available
}

# Plain ints for the hot path: an enum member lookup costs more than the comparison.
_PUBLISH = int(PacketType.PUBLISH)
_USER_PROPERTY = int(Prop.USER_PROPERTY)
#: Bytes of the fixed-size property types.
_FIXED_SIZE = {_BYTE: 1, _U16: 2, _U32: 4}

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
        kind = _PROPERTY_TYPES[ident]
        out.append(ident)
        if kind == _BYTE:
            out.append(int(value))  # type: ignore[arg-type]
        elif kind == _U16:
            out += int(value).to_bytes(2, "big")  # type: ignore[arg-type]
        elif kind == _U32:
            out += int(value).to_bytes(4, "big")  # type: ignore[arg-type]
        elif kind == _VARINT:
            out += _varint(int(value))  # type: ignore[arg-type]
        elif kind == _UTF8:
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


# -- decoding ----------------------------------------------------------------------------


def _read_varint(data: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    value = 0
    shift = 0
    for _ in range(4):
        if pos >= len(data):
            raise ProtocolViolation("truncated variable byte integer")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise ProtocolViolation("variable byte integer longer than four bytes")


def _read_utf8(data: bytes, pos: int, limit: int | None = None) -> tuple[str, int]:
    end = pos + 2 + int.from_bytes(data[pos : pos + 2], "big")
    if end > (len(data) if limit is None else limit):
        raise ProtocolViolation("string runs past the end of the packet")
    return data[pos + 2 : end].decode("utf-8", "replace"), end


def decode_properties(data: bytes, pos: int) -> tuple[Properties, int]:
    """Properties starting at ``pos``: the value and the position after them."""
    length, pos = _read_varint(data, pos)
    end = pos + length
    if end > len(data):
        raise ProtocolViolation("properties run past the end of the packet")
    if not length:
        return NO_PROPERTIES, end
    values: dict[int, int | str | bytes] = {}
    user: list[tuple[str, str]] = []
    while pos < end:
        ident = data[pos]
        pos += 1
        kind = _PROPERTY_TYPES.get(ident)
        if kind is None:
            raise ProtocolViolation(f"unknown property identifier 0x{ident:02x}")
        if kind == _BYTE:
            values[ident] = data[pos]
            pos += 1
        elif kind == _U16:
            values[ident] = int.from_bytes(data[pos : pos + 2], "big")
            pos += 2
        elif kind == _U32:
            values[ident] = int.from_bytes(data[pos : pos + 4], "big")
            pos += 4
        elif kind == _VARINT:
            values[ident], pos = _read_varint(data, pos)
        elif kind == _UTF8:
            values[ident], pos = _read_utf8(data, pos)
        elif kind == _BINARY:
            size = int.from_bytes(data[pos : pos + 2], "big")
            values[ident] = data[pos + 2 : pos + 2 + size]
            pos += 2 + size
        else:
            name, pos = _read_utf8(data, pos)
            value, pos = _read_utf8(data, pos)
            user.append((name, value))
    if pos != end:
        raise ProtocolViolation("a property runs past the property length")
    return Properties(values, tuple(user)), end


def decode_publish(first: int, body: bytes) -> Publish:
    """A PUBLISH from its first byte and body."""
    return _publish_at(first, body, 0, len(body))


def _publish_at(first: int, data: bytes, start: int, end: int) -> Publish:
    """The PUBLISH whose body is ``data[start:end]``, parsed in place (the ingest hot path:
    no copy of the body, a few slices, only the user properties kept of the properties)."""
    qos = (first >> 1) & 0x03
    if qos == 3:
        raise ProtocolViolation("PUBLISH with QoS 3")
    if end - start < 3:
        raise ProtocolViolation("PUBLISH too short for its topic")
    pos = start + 2 + ((data[start] << 8) | data[start + 1])
    topic = data[start + 2 : pos].decode("utf-8", "replace")
    packet_id = 0
    if qos:
        packet_id = (data[pos] << 8) | data[pos + 1] if pos + 2 <= end else -1
        pos += 2
    if pos >= end or packet_id < 0:
        raise ProtocolViolation("PUBLISH runs past the end of the packet")
    user: UserProperties = ()
    length = data[pos]
    if length == 0:  # no properties
        pos += 1
    elif (
        length < 0x80
        and (stop := pos + 1 + length) <= end
        and length >= 5
        and data[pos + 1] == _USER_PROPERTY
        and (name_end := pos + 4 + ((data[pos + 2] << 8) | data[pos + 3])) + 2 <= stop
        and (value_end := name_end + 2 + ((data[name_end] << 8) | data[name_end + 1])) == stop
    ):
        # Exactly one user property (the load tool's trace): read in place.
        user = (
            (
                data[pos + 4 : name_end].decode("utf-8", "replace"),
                data[name_end + 2 : value_end].decode("utf-8", "replace"),
            ),
        )
        pos = value_end
    else:
        user, pos = _publish_properties(data, pos, end)
    return Publish(
        topic, data[pos:end], qos, packet_id, bool(first & 0x08), bool(first & 0x01), user
    )


def _publish_properties(data: bytes, pos: int, end: int) -> tuple[UserProperties, int]:
    """The user properties of a PUBLISH's property block at ``pos``; every other property is
    checked for its type and skipped (a PUBLISH carries none the client acts on)."""
    length, pos = _read_varint(data, pos)
    stop = pos + length
    if stop > end:
        raise ProtocolViolation("properties run past the end of the packet")
    user: list[tuple[str, str]] = []
    while pos < stop:
        ident = data[pos]
        pos += 1
        if ident == _USER_PROPERTY:
            name, pos = _read_utf8(data, pos, stop)
            value, pos = _read_utf8(data, pos, stop)
            user.append((name, value))
            continue
        kind = _PROPERTY_TYPES.get(ident)
        if kind is None:
            raise ProtocolViolation(f"unknown property identifier 0x{ident:02x}")
        if kind == _VARINT:
            _, pos = _read_varint(data, pos)
        elif kind in (_UTF8, _BINARY):
            pos += 2 + int.from_bytes(data[pos : pos + 2], "big")
        else:
            pos += _FIXED_SIZE[kind]
    if pos != stop:
        raise ProtocolViolation("a property runs past the property length")
    return tuple(user), stop


def decode(first: int, body: bytes) -> Packet:
    """One packet from its first byte and its body (everything after Remaining Length)."""
    kind = first >> 4
    if kind == PacketType.PUBLISH:
        return decode_publish(first, body)
    try:
        if kind == PacketType.PUBACK:
            reason = body[2] if len(body) > 2 else 0
            return PubAck(int.from_bytes(body[:2], "big"), reason)
        if kind == PacketType.CONNACK:
            properties, _ = decode_properties(body, 2) if len(body) > 2 else (NO_PROPERTIES, 2)
            return ConnAck(bool(body[0] & 0x01), body[1], properties)
        if kind == PacketType.SUBACK:
            _, pos = decode_properties(body, 2)
            return SubAck(int.from_bytes(body[:2], "big"), tuple(body[pos:]))
        if kind == PacketType.PINGRESP:
            return PingResp()
        if kind == PacketType.PINGREQ:
            return PingReq()
        if kind == PacketType.DISCONNECT:
            reason = body[0] if body else 0
            properties = decode_properties(body, 1)[0] if len(body) > 1 else NO_PROPERTIES
            return Disconnect(reason, properties)
    except IndexError:
        raise ProtocolViolation(f"truncated packet of type {kind}") from None
    raise ProtocolViolation(f"unexpected packet type {kind} from the broker")


class PacketReader:
    """Incremental framing: feed it bytes in any chunks, get back whole packets."""

    def __init__(self, max_packet_bytes: int = MAX_REMAINING) -> None:
        self._buffer = bytearray()
        self._max = max_packet_bytes

    def feed(self, data: bytes) -> list[Packet]:
        """Append ``data``; return every packet now complete, in order."""
        if self._buffer:
            # One copy of the carried-over tail and the new bytes; packets are then
            # parsed in place in an immutable bytes object (slices are bytes, no second
            # copy per packet).
            self._buffer += data
            data = bytes(self._buffer)
            self._buffer.clear()
        packets: list[Packet] = []
        append = packets.append
        pos = 0
        size = len(data)
        while size - pos >= 2:
            first = data[pos]
            length = data[pos + 1]
            start = pos + 2
            if length & 0x80 and size - pos >= 3 and not data[pos + 2] & 0x80:
                # Two length bytes: every PUBLISH of 128 bytes to 16 KiB.
                length = (length & 0x7F) | (data[pos + 2] << 7)
                start = pos + 3
            elif length & 0x80:
                try:
                    length, start = _read_varint(data, pos + 1)
                except ProtocolViolation:
                    if size - pos < 5:
                        break  # the length itself is still incomplete
                    raise
            if length > self._max:
                raise ProtocolViolation(f"packet of {length} bytes exceeds the maximum")
            end = start + length
            if end > size:
                break
            if first >> 4 == _PUBLISH:
                append(_publish_at(first, data, start, end))
            else:
                append(decode(first, data[start:end]))
            pos = end
        if pos < size:
            self._buffer += data[pos:]
        return packets
