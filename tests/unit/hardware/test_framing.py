"""The serial frame codec: examples of every rule, then properties over arbitrary input."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.contract import (
    AlertMessage,
    AttestationRequest,
    BadgeEvent,
    CommandMessage,
    CommandVerb,
    MessageKind,
    Severity,
    StatusMessage,
    TelemetryMessage,
)
from hardware.framing import (
    DOWNSTREAM_KINDS,
    MARKER,
    Frame,
    FrameDecoder,
    Item,
    LogLine,
    Violation,
    decode_line,
    encode_frame,
)

STATUS = StatusMessage(
    device_type="access_control_node",
    board_family="stm32f401",
    firmware_stack="rust_embassy",
    firmware_version="0.1.0",
    device_id="stm32f401-door-03",
)
STATUS_LINE = (
    b'@aurora status {"device_type":"access_control_node","board_family":"stm32f401",'
    b'"firmware_stack":"rust_embassy","firmware_version":"0.1.0","device_id":"stm32f401-door-03"}'
)


def test_encode_frame_is_marker_kind_compact_json_newline() -> None:
    assert encode_frame(MessageKind.STATUS, STATUS) == STATUS_LINE + b"\n"


def test_encode_frame_refuses_a_kind_that_is_not_the_messages_own() -> None:
    with pytest.raises(ValueError, match="status message cannot be framed as telemetry"):
        encode_frame(MessageKind.TELEMETRY, STATUS)


def test_decoder_yields_frames_and_log_lines_in_order_with_crlf() -> None:
    decoder = FrameDecoder()
    items = decoder.feed(b"I (312) boot: app start\r\n" + STATUS_LINE + b"\r\nhello\n")
    assert items == [
        LogLine("I (312) boot: app start"),
        Frame(MessageKind.STATUS, STATUS, STATUS_LINE.split(b" ", 2)[2]),
        LogLine("hello"),
    ]


def test_partial_line_waits_for_its_newline() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(STATUS_LINE[:30]) == []
    assert decoder.buffered == 30
    (frame,) = decoder.feed(STATUS_LINE[30:] + b"\n")
    assert isinstance(frame, Frame)
    assert frame.device_id == "stm32f401-door-03"


def test_leading_noise_before_a_frame_is_ignored() -> None:
    (frame,) = FrameDecoder().feed(b"\x00\xff\xfe" + STATUS_LINE + b"\n")
    assert isinstance(frame, Frame)


def test_a_log_line_that_mentions_the_marker_mid_line_stays_a_log_line() -> None:
    (item,) = FrameDecoder().feed(b"tx: " + STATUS_LINE + b"\n")
    assert isinstance(item, LogLine)


def test_non_utf8_log_bytes_are_shown_escaped() -> None:
    (item,) = FrameDecoder().feed(b"temp \xb0C ok\n")
    assert item == LogLine("temp \\xb0C ok")


def test_blank_lines_are_dropped() -> None:
    assert FrameDecoder().feed(b"\n\r\n   \n") == []


@pytest.mark.parametrize(
    ("line", "reason", "field", "words"),
    [
        (b'@aurora status {"device_id":"x"}', "missing_field", "device_type", "Field required"),
        (
            b'@aurora telemetry {"device_id":"d1","metric":"t","value":"hot","unit":"C"}',
            "wrong_type",
            "value",
            "valid number",
        ),
        (
            b'@aurora badge_event {"device_id":"d1","uid":"XYZ","event":"badge_read"}',
            "bad_value",
            "uid",
            "pattern",
        ),
        (
            b'@aurora alerts {"device_id":"d1","type":"t","severity":"dire","event_details":""}',
            "bad_value",
            "severity",
            "'info', 'low', 'medium', 'high' or 'critical'",
        ),
        (b"@aurora status {not json", "not_json", "", "invalid JSON"),
        (b"@aurora status \xff\xfe", "not_json", "", "not UTF-8"),
        (b"@aurora status", "bad_frame", "", "JSON is missing"),
        (b"@aurora heartbeat {}", "unknown_kind", "", "'heartbeat' is not one of"),
        (b'@aurora command {"verb":"unlock"}', "wrong_direction", "", "host -> board only"),
        (
            b'@aurora telemetry {"device_id":"d1","metric":"t","value":1,"unit":"C","x":1}',
            "unknown_field",
            "x",
            "Extra inputs",
        ),
    ],
)
def test_violations_name_field_expectation_and_frame_in_one_line(
    line: bytes, reason: str, field: str, words: str
) -> None:
    item = decode_line(line)
    assert isinstance(item, Violation)
    assert (item.reason, item.field) == (reason, field)
    text = item.one_line()
    assert "\n" not in text
    assert words in text
    assert "| frame: @aurora" in text
    if field:
        assert f"field {field!r}" in text


def test_downstream_decoder_accepts_commands_and_refuses_upstream_kinds() -> None:
    command = CommandMessage(
        verb=CommandVerb.UNLOCK, request_id="r1", issued_at="2026-01-01T00:00:00Z", duration_s=5
    )
    decoder = FrameDecoder(accept=DOWNSTREAM_KINDS)
    items = decoder.feed(encode_frame(MessageKind.COMMAND, command) + STATUS_LINE + b"\n")
    assert items[0] == Frame(MessageKind.COMMAND, command, items[0].payload)  # type: ignore[union-attr]
    assert isinstance(items[1], Violation)
    assert items[1].reason == "wrong_direction"


def test_overlong_frame_is_reported_once_and_the_next_line_decodes() -> None:
    decoder = FrameDecoder(max_line_bytes=64)
    items = decoder.feed(b"@aurora status " + b"x" * 200)
    assert [type(item) for item in items] == [Violation]
    assert items[0].reason == "overlong"  # type: ignore[union-attr]
    assert decoder.buffered == 0
    assert decoder.feed(b"y" * 500) == []
    assert decoder.buffered == 0
    assert decoder.feed(b"tail\nnext line\n") == [LogLine("next line")]


def test_overlong_log_line_is_kept_truncated() -> None:
    items = FrameDecoder(max_line_bytes=8).feed(b"0123456789abcdef\nok\n")
    assert items == [LogLine("01234567", truncated=True), LogLine("ok")]


def test_flush_decodes_an_unterminated_last_line() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(STATUS_LINE) == []
    (frame,) = decoder.flush()
    assert isinstance(frame, Frame)


# --- properties -----------------------------------------------------------------------

ids = st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z")
tokens = st.from_regex(r"\A[A-Za-z0-9_.-]{1,64}\Z")
text = st.text(max_size=200)

statuses = st.builds(
    StatusMessage,
    device_type=tokens,
    board_family=tokens,
    firmware_stack=tokens,
    firmware_version=st.text(min_size=1, max_size=64),
    device_id=ids,
    firmware_hash=st.none() | st.from_regex(r"\A[0-9a-f]{64}\Z"),
)
telemetry = st.builds(
    TelemetryMessage,
    device_id=ids,
    metric=tokens,
    value=st.floats(allow_nan=False, allow_infinity=False),
    unit=st.text(min_size=1, max_size=16),
)
alerts = st.builds(
    AlertMessage,
    device_id=ids,
    type=tokens,
    severity=st.sampled_from(Severity),
    event_details=st.text(max_size=300),
)
badges = st.builds(
    BadgeEvent,
    device_id=ids,
    uid=st.from_regex(r"\A(?:[0-9A-Fa-f]{2}){4,10}\Z"),
    event=st.just("badge_read"),
)
upstream = statuses | telemetry | alerts | badges
KIND = {
    StatusMessage: MessageKind.STATUS,
    TelemetryMessage: MessageKind.TELEMETRY,
    AlertMessage: MessageKind.ALERTS,
    BadgeEvent: MessageKind.BADGE_EVENT,
}


@settings(deadline=None)  # a loaded CI machine must not fail on timing
@given(messages=st.lists(upstream, max_size=5))
def test_round_trip_any_valid_upstream_messages(messages: list[StatusMessage]) -> None:
    wire = b"".join(encode_frame(KIND[type(message)], message) for message in messages)
    items = FrameDecoder().feed(wire)
    assert [item.message for item in items if isinstance(item, Frame)] == messages
    assert len(items) == len(messages)


@settings(deadline=None)  # a loaded CI machine must not fail on timing
@given(nonce=st.from_regex(r"\A[0-9a-f]{32}\Z"), expires=st.integers(min_value=1, max_value=3600))
def test_round_trip_attestation_request(nonce: str, expires: int) -> None:
    request = AttestationRequest(
        nonce=nonce, issued_at="2026-11-22T21:00:00.123Z", expires_in_s=expires
    )
    (frame,) = FrameDecoder(accept=DOWNSTREAM_KINDS).feed(
        encode_frame(MessageKind.ATTESTATION_REQUEST, request)
    )
    assert isinstance(frame, Frame)
    assert frame.message == request


def _chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


noisy_bytes = st.lists(
    st.sampled_from([b"\n", b"\r\n", b"\x00", b"\xff", b"@aurora ", b"status ", b"{}", b"log"])
    | st.binary(max_size=40),
    max_size=30,
).map(b"".join)


@settings(max_examples=200, deadline=None)
@given(
    messages=st.lists(upstream, max_size=4),
    noise=noisy_bytes,
    cuts=st.lists(st.integers(min_value=0), max_size=20),
    bound=st.integers(min_value=8, max_value=600),
)
def test_any_chunking_gives_the_same_items(
    messages: list[StatusMessage], noise: bytes, cuts: list[int], bound: int
) -> None:
    wire = noise + b"\n".join(encode_frame(KIND[type(m)], m) for m in messages) + noise
    whole = FrameDecoder(max_line_bytes=bound)
    expected = whole.feed(wire) + whole.flush()
    pieces = FrameDecoder(max_line_bytes=bound)
    got: list[Item] = []
    for chunk in _chunked(wire, cuts):
        got += pieces.feed(chunk)
        assert pieces.buffered <= bound
    got += pieces.flush()
    assert got == expected


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2000) | noisy_bytes)
def test_garbage_never_raises_and_every_violation_is_one_line(data: bytes) -> None:
    decoder = FrameDecoder(max_line_bytes=256)
    items = decoder.feed(data) + decoder.flush()
    for item in items:
        if isinstance(item, Violation):
            assert "\n" not in item.one_line()
        if isinstance(item, LogLine):
            assert "\n" not in item.text


@settings(deadline=None)  # a loaded CI machine must not fail on timing
@given(line=st.binary(max_size=300).filter(lambda b: b"\n" not in b))
def test_every_frame_starting_with_the_marker_is_a_frame_or_a_violation(line: bytes) -> None:
    item = decode_line(MARKER + line)
    assert not isinstance(item, LogLine)
    json.dumps(str(item))  # printable without error
