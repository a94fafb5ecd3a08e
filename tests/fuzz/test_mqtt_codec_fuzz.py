"""The MQTT v5 decoder under hostile broker bytes: PacketReader answers with packets or a
ProtocolViolation, never another exception, and splits no differently however the socket's
reads chunk the bytes (its PUBLISH fast path included)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from backend.mqtt import ProtocolViolation
from backend.mqtt.codec import Packet, PubAck, Publish, encode, encode_publish
from backend.mqtt.reader import PacketReader
from tests.fuzz.profile import fuzz

text = st.text(max_size=40)
user = st.lists(st.tuples(text, text), max_size=3).map(tuple)
publishes = st.builds(
    Publish,
    topic=text,
    payload=st.binary(max_size=300),
    qos=st.sampled_from([0, 1]),
    packet_id=st.integers(1, 65535),
    dup=st.booleans(),
    retain=st.booleans(),
    user_properties=user,
).map(
    lambda p: Publish(
        p.topic, p.payload, p.qos, p.packet_id if p.qos else 0, p.dup, p.retain, p.user_properties
    )
)
wire = st.lists(
    publishes.map(encode_publish) | st.builds(lambda i: encode(PubAck(i, 0)), st.integers(1, 9)),
    min_size=1,
    max_size=12,
)


def _chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def _read(chunks: list[bytes]) -> list[Packet] | ProtocolViolation:
    reader = PacketReader()
    packets: list[Packet] = []
    try:
        for chunk in chunks:
            packets += reader.feed(chunk)
    except ProtocolViolation as violation:
        return violation
    return packets


@fuzz(200)
@given(packets=wire, cuts=st.lists(st.integers(0, 10_000), max_size=8))
def test_valid_packets_decode_the_same_however_chunked(
    packets: list[bytes], cuts: list[int]
) -> None:
    data = b"".join(packets)
    whole = _read([data])
    assert not isinstance(whole, ProtocolViolation)
    assert len(whole) == len(packets)
    assert _read(_chunked(data, cuts)) == whole


@fuzz(300)
@given(
    packets=wire,
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
    garbage=st.binary(max_size=40),
)
def test_corrupted_bytes_give_packets_or_a_protocol_violation(
    packets: list[bytes], flips: list[tuple[int, int]], garbage: bytes
) -> None:
    data = bytearray(b"".join(packets) + garbage)
    for where, value in flips:
        data[where % len(data)] = value
    # Anything but ProtocolViolation escaping _read fails the test.
    _read([bytes(data)])
