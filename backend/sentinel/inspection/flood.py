"""Admission before inspection: one client's flood must not delay every other client.

A token bucket per addressee (``limits.client_rate_per_s``, ``limits.client_burst``): a
message over its client's budget is dropped unjudged (it would otherwise queue in front of
everyone else's alerts in the worker), counted, and reported once per window as a
``client-flood`` finding of the anomaly stage. Pure: the time comes with the message.
Buckets are bounded (least recently used forgotten first), like every per-key state here.
"""

from __future__ import annotations

from collections import OrderedDict

from backend.contract import Severity
from backend.sentinel.inspection.model import Action, AlertMessage, Finding, Stage
from backend.sentinel.inspection.rules import Limits

MAX_BUCKETS = 100_000
RULE = "client-flood"


class FloodGuard:
    """Per-client token buckets; :meth:`admit` returns a finding when a message is over."""

    def __init__(self, limits: Limits) -> None:
        self._rate = limits.client_rate_per_s
        self._burst = limits.client_burst
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self.dropped = 0

    def admit(self, message: AlertMessage) -> Finding | None:
        """None when the message may be inspected, else the ``client-flood`` finding."""
        now = message.received_at_s
        tokens, last = self._buckets.get(message.client_id, (self._burst, now))
        tokens = min(self._burst, tokens + max(0.0, now - last) * self._rate)
        self._buckets[message.client_id] = (tokens - 1.0 if tokens >= 1.0 else tokens, now)
        self._buckets.move_to_end(message.client_id)
        while len(self._buckets) > MAX_BUCKETS:
            self._buckets.popitem(last=False)
        if tokens >= 1.0:
            return None
        self.dropped += 1
        return Finding(
            Stage.ANOMALY,
            RULE,
            Severity.HIGH,
            Action.BLOCK,
            f"client {message.client_id!r} receives over {self._rate:g} messages/s; "
            "the excess is dropped",
            message.client_id,
        )
