"""The ``aurora-trace`` MQTT v5 user property: ``<client>:<seq>:<sent_ns>``, bounded.

Load clients send it so end-to-end latency and loss are measured without touching the
contract JSON; the backend copies it into stream entries. It arrives from any device,
though, so it is checked before anything stores it (issue 11.6: a 60 KB property on an
8-byte payload was copied into every audit entry).
"""

from __future__ import annotations

import re

#: Name of the MQTT v5 user property.
TRACE_PROPERTY = "aurora-trace"
#: Longest valid trace: a 64-char client id, an 18-digit sequence, a 20-digit time, 2 colons.
MAX_TRACE_CHARS = 64 + 1 + 18 + 1 + 20

# ``client`` is the MQTT client id (a device id: no ':'), ``seq`` and ``sent_ns`` decimal.
_TRACE = re.compile(r"[A-Za-z0-9_-]{1,64}:[0-9]{1,18}:[0-9]{1,20}")


def valid_trace(value: str) -> bool:
    """True when ``value`` is ``<client>:<seq>:<sent_ns>`` within :data:`MAX_TRACE_CHARS`."""
    # Length first: the regex never sees a hostile 60 KB string.
    return len(value) <= MAX_TRACE_CHARS and _TRACE.fullmatch(value) is not None
