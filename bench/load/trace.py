"""The ``aurora-trace`` MQTT v5 user property: who sent a load message, which one, and when.

Load messages carry ``"<client>:<seq>:<sent_ns>"`` as a user property, never in the JSON,
so every payload stays contract-exact (seed 001) while the backend copies the property
verbatim into the Redis stream entry field ``trace``. ``client`` is the MQTT client id (the
device id, so it holds no ``:``), ``seq`` counts that client's messages from 0 and
``sent_ns`` is the sender's ``time.time_ns()`` at publish — comparable only on the sender's
host, which is why the ingest watcher runs next to the publishers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Name of the MQTT v5 user property, and of the Redis stream entry field it lands in.
TRACE_PROPERTY = "aurora-trace"
TRACE_FIELD = "trace"

_TRACE = re.compile(r"([A-Za-z0-9_-]{1,64}):(\d{1,18}):(\d{1,20})")


class TraceError(ValueError):
    """A trace string that is not ``<client>:<seq>:<sent_ns>``."""


@dataclass(frozen=True, slots=True)
class Trace:
    """One load message's identity and send time."""

    client: str
    seq: int
    sent_ns: int

    def encode(self) -> str:
        """The property value, ``"<client>:<seq>:<sent_ns>"``."""
        return f"{self.client}:{self.seq}:{self.sent_ns}"


def decode_trace(value: str | bytes) -> Trace:
    """Parse a trace property value; raises :class:`TraceError` with the bad value."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    match = _TRACE.fullmatch(text)
    if match is None:
        raise TraceError(f"trace {text[:80]!r} is not <client>:<seq>:<sent_ns>")
    return Trace(match[1], int(match[2]), int(match[3]))
