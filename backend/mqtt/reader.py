"""The pure MQTT v5 decoder: :class:`PacketReader` is fed whatever the socket gave and
returns whole packets (values of :mod:`backend.mqtt.codec`); no I/O.

The ingest hot path: a PUBLISH is parsed in place in the bytes one read gave (one copy per
read, none per packet), with a handful of slices; only its user properties are kept (the
``aurora-trace`` the load tool sets), and the common case of exactly one is read without
the general property decoder.
"""

from __future__ import annotations

from backend.mqtt.codec import (
    MAX_REMAINING,
    NO_PROPERTIES,
    PROPERTY_WIRE_TYPES,
    WIRE_BINARY,
    WIRE_BYTE,
    WIRE_U16,
    WIRE_U32,
    WIRE_UTF8,
    WIRE_VARINT,
    ConnAck,
    Disconnect,
    Packet,
    PacketType,
    PingReq,
    PingResp,
    Prop,
    Properties,
    PubAck,
    Publish,
    SubAck,
    UserProperties,
)
from backend.mqtt.errors import ProtocolViolation

# Plain ints for the hot path: an enum member lookup costs more than the comparison.
_PUBLISH = int(PacketType.PUBLISH)
_USER_PROPERTY = int(Prop.USER_PROPERTY)
#: Bytes of the fixed-size property types.
_FIXED_SIZE = {WIRE_BYTE: 1, WIRE_U16: 2, WIRE_U32: 4}


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
        kind = PROPERTY_WIRE_TYPES.get(ident)
        if kind is None:
            raise ProtocolViolation(f"unknown property identifier 0x{ident:02x}")
        if kind == WIRE_BYTE:
            values[ident] = data[pos]
            pos += 1
        elif kind == WIRE_U16:
            values[ident] = int.from_bytes(data[pos : pos + 2], "big")
            pos += 2
        elif kind == WIRE_U32:
            values[ident] = int.from_bytes(data[pos : pos + 4], "big")
            pos += 4
        elif kind == WIRE_VARINT:
            values[ident], pos = _read_varint(data, pos)
        elif kind == WIRE_UTF8:
            values[ident], pos = _read_utf8(data, pos)
        elif kind == WIRE_BINARY:
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
        kind = PROPERTY_WIRE_TYPES.get(ident)
        if kind is None:
            raise ProtocolViolation(f"unknown property identifier 0x{ident:02x}")
        if kind == WIRE_VARINT:
            _, pos = _read_varint(data, pos)
        elif kind in (WIRE_UTF8, WIRE_BINARY):
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
