"""Console feed: which stream entries become which page events (pure)."""

from __future__ import annotations

import json

from backend.bus import ALERTS_STREAM, AUDIT_STREAM, TELEMETRY_STREAM
from backend.bus.streams import ReadEntry
from backend.console.feed import SENTINEL_EVENTS_STREAM, console_event, sse


def entry(stream: str, kind: str, data: object) -> ReadEntry:
    return ReadEntry(stream, "1-0", kind, data, None, {})


ALERT = {
    "id": 7,
    "type": "c2_beacon",
    "severity": "high",
    "source": "api",
    "created_at": "2026-12-01T00:00:00Z",
    "origin_site": "b",
}


def test_an_alert_of_the_api_shape_is_sent_as_it_is() -> None:
    assert console_event(entry(ALERTS_STREAM, "c2_beacon", ALERT)) == ("alert", ALERT)


def test_a_device_alert_forwarded_verbatim_makes_the_page_reread_the_queue() -> None:
    verbatim = {"device_id": "d1", "alert_type": "tamper", "severity": "high"}
    assert console_event(entry(ALERTS_STREAM, "device_alert", verbatim)) == (
        "alerts_changed",
        {"type": "device_alert"},
    )


def test_device_audit_kinds_name_the_device() -> None:
    data = {"device_id": "door-1", "verb": "lockdown", "reason": "operator"}
    assert console_event(entry(AUDIT_STREAM, "command_sent", data)) == (
        "device",
        {"device_id": "door-1", "kind": "command_sent", "data": data},
    )


def test_other_audit_telemetry_and_malformed_entries_are_not_sent() -> None:
    assert console_event(entry(AUDIT_STREAM, "rejected_message", {"topic": "x"})) is None
    assert console_event(entry(AUDIT_STREAM, "command_sent", {"device_id": 5})) is None
    assert console_event(entry(AUDIT_STREAM, "command_sent", "not a dict")) is None
    assert console_event(entry(TELEMETRY_STREAM, "telemetry", {"device_id": "d"})) is None
    assert console_event(entry(SENTINEL_EVENTS_STREAM, "event", "x")) is None


def test_sentinel_security_events_pass_through() -> None:
    event = {"rule": "beaconing", "client_id": "c1", "count": 3}
    assert console_event(entry(SENTINEL_EVENTS_STREAM, "security_event", event)) == (
        "security_event",
        event,
    )


def test_sse_frame_is_one_event_and_one_data_line_even_for_newlines() -> None:
    frame = sse("alert", {"title": "two\nlines"}).decode()
    assert frame.endswith("\n\n")
    lines = frame.rstrip("\n").split("\n")
    assert lines[0] == "event: alert"
    assert len(lines) == 2
    assert json.loads(lines[1].removeprefix("data: ")) == {"title": "two\nlines"}
