"""Redis Streams of the site (alerts, telemetry, audit) and consumer-group helpers."""

from backend.bus.streams import (
    ALERTS_STREAM,
    AUDIT_STREAM,
    DEADLETTER_STREAM,
    STREAMS,
    TELEMETRY_STREAM,
    ReadEntry,
    StreamBus,
    StreamEntry,
    compact,
)

__all__ = [
    "ALERTS_STREAM",
    "AUDIT_STREAM",
    "DEADLETTER_STREAM",
    "STREAMS",
    "TELEMETRY_STREAM",
    "ReadEntry",
    "StreamBus",
    "StreamEntry",
    "compact",
]
