"""The bridge's rules without I/O: pinning, refusal, QoS and commands going down."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from backend.contract import (
    BadgeEvent,
    CommandMessage,
    CommandVerb,
    MessageKind,
    encode,
)
from hardware.framing import LogLine, Violation, encode_frame
from hardware.session import BridgeSession, Downlink, Pinned, Publish, Refused
from tests.unit.hardware.boards import reading_frame, status_frame


def status(device_id: str) -> bytes:
    return status_frame(device_id, "stm32f401")


def badge(device_id: str) -> bytes:
    return encode_frame(
        MessageKind.BADGE_EVENT, BadgeEvent(device_id=device_id, uid="0455AF21", event="badge_read")
    )


def reading(device_id: str) -> bytes:
    return reading_frame(device_id, 20.0)


def test_first_status_pins_and_publishes_with_qos_by_kind() -> None:
    session = BridgeSession()
    events = session.receive(b"boot\n" + status("door-1") + badge("door-1") + reading("door-1"))
    assert events[0] == LogLine("boot")
    assert events[1] == Pinned("door-1")
    publishes = [event for event in events if isinstance(event, Publish)]
    assert [(p.topic, p.qos) for p in publishes] == [
        ("aurora/sensors/door-1/status", 1),
        ("aurora/access/door-1/badge_event", 1),
        ("aurora/sensors/door-1/telemetry", 0),
    ]
    assert session.subscriptions() == (
        "aurora/access/door-1/command",
        "aurora/attestation/door-1/request",
    )


def test_frames_for_another_id_are_refused_after_the_pin() -> None:
    session = BridgeSession()
    session.receive(status("door-1"))
    (event,) = session.receive(badge("door-2"))
    assert isinstance(event, Refused)
    assert "pinned id 'door-1'" in event.one_line()
    assert session.stats.refused == 1
    (again,) = session.receive(status("door-2"))
    assert isinstance(again, Refused)


def test_frames_before_the_pin_wait_and_are_judged_at_the_pin() -> None:
    session = BridgeSession()
    assert session.receive(badge("door-1") + badge("other")) == []
    events = session.receive(status("door-1"))
    assert isinstance(events[0], Pinned)
    assert [type(event) for event in events[1:]] == [Publish, Publish, Refused]


def test_unpinned_backlog_is_bounded() -> None:
    session = BridgeSession(max_unpinned=2)
    session.receive(badge("door-1") + badge("door-1"))
    (event,) = session.receive(badge("door-1"))
    assert isinstance(event, Refused)
    assert "no status frame yet" in event.detail


def test_violation_is_counted_and_never_published() -> None:
    session = BridgeSession()
    session.receive(status("door-1"))
    (event,) = session.receive(b'@aurora badge_event {"device_id":"door-1","uid":"zz"}\n')
    assert isinstance(event, Violation)
    assert session.stats.violations == 1


def test_commands_are_validated_and_framed_for_the_board() -> None:
    session = BridgeSession()
    session.receive(status("door-1"))
    command = CommandMessage(
        verb=CommandVerb.UNLOCK, request_id="r-1", issued_at="2026-11-22T21:00:00Z", duration_s=5
    )
    spaced = (
        b'{"verb": "unlock", "request_id": "r-1", '
        b'"issued_at": "2026-11-22T21:00:00Z", "duration_s": 5}'
    )
    down = session.downward("aurora/access/door-1/command", spaced)
    assert isinstance(down, Downlink)
    assert down.frame == encode_frame(MessageKind.COMMAND, command)
    assert down.kind is MessageKind.COMMAND
    assert down.payload == encode(command)
    bad = session.downward("aurora/access/door-1/command", b'{"verb":"explode"}')
    assert isinstance(bad, Violation)
    assert "from the broker" in bad.detail
    other = session.downward("aurora/access/door-2/command", spaced)
    assert isinstance(other, Violation)


def test_reopening_the_port_forgets_a_half_line() -> None:
    session = BridgeSession()
    session.receive(status("door-1") + badge("door-1")[:20])
    session.line_lost()
    (event,) = session.receive(status("door-1"))
    assert isinstance(event, Publish)


@settings(deadline=None)  # a loaded CI machine must not fail on timing
@given(noise=st.binary(max_size=400), cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_whatever_the_board_sends_only_its_own_topics_are_published(
    noise: bytes, cuts: list[int]
) -> None:
    session = BridgeSession()
    wire = status("door-1") + noise + b"\n" + badge("door-2") + noise + reading("door-1")
    points = sorted({cut % (len(wire) + 1) for cut in cuts})
    events = []
    for start, end in itertools.pairwise([0, *points, len(wire)]):
        events += session.receive(wire[start:end])
    topics = [event.topic for event in events if isinstance(event, Publish)]
    assert topics[0] == "aurora/sensors/door-1/status"
    assert all("/door-1/" in topic for topic in topics)
    assert session.device_id == "door-1"
