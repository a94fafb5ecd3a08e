"""What the console is told, as pure functions: stream entries in, console events out.

The page receives server-sent events (``event: <kind>`` + one JSON ``data:`` line):

* ``hello``: the site id and what the server will send (once, first).
* ``alert``: one alert in the REST API's shape (``GET /api/v1/alerts`` items), newest last.
* ``device``: something happened to a device (status, attestation result, command sent,
  badge read); the page refreshes that device's row and shows the event in its log.
* ``security_event``: a Sentinel security event (``aurora:sentinel:events``).
* ``sentinel``: the Sentinel panel (client connections per region, the pipeline's counters;
  ``backend.console.sentinel``), when it changed; only where the Sentinel is configured.
* ``topology``: the site topology (``GET /api/v1/system/topology``), about once a second.
* ``status``: the feed's own health (e.g. Redis unreachable; the page says so).
"""

from __future__ import annotations

import json
from typing import Any

from backend.bus import ALERTS_STREAM, AUDIT_STREAM
from backend.bus.streams import ReadEntry

#: Sentinel security events (issue 14), followed when the stream exists.
SENTINEL_EVENTS_STREAM = "aurora:sentinel:events"
#: Streams the console follows. Telemetry is left out on purpose: at thousands of readings
#: a second it would drown the page; device rows refresh from status events instead.
FOLLOWED_STREAMS = (ALERTS_STREAM, AUDIT_STREAM, SENTINEL_EVENTS_STREAM)
#: Audit kinds that change what the devices table shows.
DEVICE_AUDIT_KINDS = frozenset(
    {"device_status", "attestation_result", "command_sent", "badge_read", "attestation_issued"}
)
#: Keys an alert of the API shape always has (device alerts forwarded verbatim do not).
_ALERT_KEYS = frozenset({"id", "type", "severity", "source", "created_at"})


def sse(event: str, data: Any) -> bytes:
    """One server-sent event; JSON never holds a raw newline, so one ``data:`` line."""
    return (
        f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n".encode()
    )


def console_event(entry: ReadEntry) -> tuple[str, Any] | None:
    """The console event for one stream entry, or None if the page has no use for it."""
    data = entry.data
    if entry.stream == ALERTS_STREAM:
        if isinstance(data, dict) and data.keys() >= _ALERT_KEYS:
            return "alert", data
        # A device's own alert as it sent it: the page re-reads the alert queue.
        return "alerts_changed", {"type": entry.type}
    if entry.stream == AUDIT_STREAM:
        if entry.type in DEVICE_AUDIT_KINDS and isinstance(data, dict):
            device_id = data.get("device_id")
            if isinstance(device_id, str):
                return "device", {"device_id": device_id, "kind": entry.type, "data": data}
        return None
    if entry.stream == SENTINEL_EVENTS_STREAM and isinstance(data, dict):
        return "security_event", data
    return None
