"""The serial framing under hostile board output: FrameDecoder never raises, never holds
more than its bound, and splits no differently however the port's reads chunk the bytes."""

from __future__ import annotations

import itertools
import random

from hypothesis import given
from hypothesis import strategies as st

from backend.contract import MessageKind, RejectReason
from hardware.framing import MARKER, Frame, FrameDecoder, Item, LogLine, Violation
from tests.fuzz.hostile import hostile_messages
from tests.fuzz.profile import fuzz

DEVICE = "stm32f401-door-03"
KIND_OF_TOPIC = {
    "status": MessageKind.STATUS,
    "telemetry": MessageKind.TELEMETRY,
    "alerts": MessageKind.ALERTS,
    "badge_event": MessageKind.BADGE_EVENT,
    "response": MessageKind.ATTESTATION_RESPONSE,
}


def _hostile_frames(seed: int) -> list[bytes]:
    frames = []
    for message in hostile_messages(DEVICE, random.Random(seed)):
        if message.reason is RejectReason.DEVICE_ID_MISMATCH:
            continue  # a frame has no topic; the bridge session refuses other ids
        kind = KIND_OF_TOPIC[message.topic.rsplit("/", 1)[1]]
        frames.append(MARKER + kind.value.encode() + b" " + message.payload.replace(b"\n", b" "))
    return frames


HOSTILE = _hostile_frames(11)
pieces = st.lists(
    st.sampled_from(HOSTILE)
    | st.sampled_from([b"\n", b"\r\n", b"\x00", b"\xff", MARKER, b"status ", b"log line"])
    | st.binary(max_size=60),
    max_size=25,
).map(b"".join)


def _chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@fuzz(250)
@given(wire=pieces, cuts=st.lists(st.integers(min_value=0), max_size=30))
def test_hostile_board_output_never_raises_and_chunking_does_not_matter(
    wire: bytes, cuts: list[int]
) -> None:
    whole = FrameDecoder()
    expected = whole.feed(wire) + whole.flush()
    decoder = FrameDecoder()
    got: list[Item] = []
    for chunk in _chunked(wire, cuts):
        got += decoder.feed(chunk)
        assert decoder.buffered <= decoder.max_line_bytes
    got += decoder.flush()
    assert got == expected
    for item in got:
        assert isinstance(item, Frame | LogLine | Violation)
        if isinstance(item, Violation):
            assert "\n" not in item.one_line()


def test_every_hostile_frame_is_a_violation_never_a_frame() -> None:
    decoder = FrameDecoder()
    items = decoder.feed(b"\n".join(HOSTILE) + b"\n")
    assert len(items) == len(HOSTILE)
    assert all(isinstance(item, Violation) for item in items), [
        item for item in items if not isinstance(item, Violation)
    ]
