"""Stage 2, anomaly detection: each publisher against its own recent behaviour.

The behaviours are AWS IoT Device Defender's (DESIGN.md, Sentinel): a per-publisher metric,
a statistical threshold over its own history, and datapoints before the baseline counts.

* **rate**: messages per ``bucket_s``; an exponentially weighted mean and variance of past
  buckets; the current bucket alarms once its count exceeds ``mean + z * std``. Every
  message over the line is flagged (the aggregator folds them into one event).
* **payload size**: the same weighted statistics over payload bytes; ``|z|`` over the
  threshold is an outlier, large or small.
* **beaconing**: the last ``samples`` inter-arrival times; a mean in
  ``[min_interval_s, max_interval_s]`` with a coefficient of variation under
  ``max_jitter_ratio`` is the rhythm of an implant's C2 heartbeat, not of real alerts.
* **first seen**: a publisher (or a topic) never seen before, once ``learning_s`` passed.

State is bounded: at most ``max_tracked`` publishers are remembered, least recently seen
forgotten first, so a flood of fresh identities costs a constant amount of memory.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from backend.sentinel.inspection.model import AlertMessage, Finding, Stage
from backend.sentinel.inspection.rules import Anomaly

#: Empty buckets folded into the rate baseline after a silence, at most (a publisher that
#: returns after a day should not cost a day's worth of updates).
MAX_GAP_BUCKETS = 64


@dataclass(slots=True)
class Ewm:
    """Exponentially weighted mean and variance (West's incremental form)."""

    alpha: float
    mean: float = 0.0
    var: float = 0.0
    n: int = 0

    def add(self, x: float) -> None:
        """Fold one datapoint in."""
        if self.n == 0:
            self.mean = x
        else:
            diff = x - self.mean
            incr = self.alpha * diff
            self.mean += incr
            self.var = (1 - self.alpha) * (self.var + diff * incr)
        self.n += 1

    def std(self, floor: float) -> float:
        """The deviation, never below ``floor``."""
        return max(math.sqrt(self.var), floor)


@dataclass(slots=True)
class _Publisher:
    rate: Ewm
    size: Ewm
    bucket: int
    count: int = 0
    last_at_s: float | None = None
    intervals: deque[float] = field(default_factory=deque)


class AnomalyStage:
    """Per-publisher baselines; feed messages in time order (per publisher)."""

    def __init__(self, rules: Anomaly) -> None:
        self._rules = rules
        self._publishers: OrderedDict[str, _Publisher] = OrderedDict()
        self._topics: set[str] = set()
        self._started_at_s: float | None = None
        self.evicted = 0

    @property
    def tracked(self) -> int:
        """Publishers remembered now."""
        return len(self._publishers)

    def inspect(self, message: AlertMessage) -> list[Finding]:
        """Findings for this message; updates the publisher's baselines."""
        now = message.received_at_s
        if self._started_at_s is None:
            self._started_at_s = now
        findings: list[Finding] = []
        state = self._publishers.get(message.publisher)
        if state is None:
            findings.extend(self._first_seen_publisher(message))
            state = self._track(message.publisher, now)
        else:
            self._publishers.move_to_end(message.publisher)
        findings.extend(self._first_seen_topic(message))
        findings.extend(self._rate(state, message))
        findings.extend(self._size(state, message))
        findings.extend(self._beacon(state, message))
        return findings

    def _track(self, publisher: str, now: float) -> _Publisher:
        rules = self._rules
        state = _Publisher(
            rate=Ewm(rules.rate.alpha),
            size=Ewm(rules.payload_size.alpha),
            bucket=int(now // rules.rate.bucket_s),
        )
        self._publishers[publisher] = state
        while len(self._publishers) > rules.max_tracked:
            self._publishers.popitem(last=False)
            self.evicted += 1
        return state

    def _learning(self, now: float) -> bool:
        assert self._started_at_s is not None
        return now - self._started_at_s < self._rules.first_seen.learning_s

    def _first_seen_publisher(self, message: AlertMessage) -> list[Finding]:
        rule = self._rules.first_seen
        if not (rule.enabled and rule.publisher) or self._learning(message.received_at_s):
            return []
        return [
            Finding(
                Stage.ANOMALY,
                "new-publisher",
                rule.severity,
                rule.action,
                f"publisher {message.publisher!r} never seen before",
                message.client_id,
            )
        ]

    def _first_seen_topic(self, message: AlertMessage) -> list[Finding]:
        rule = self._rules.first_seen
        if not (rule.enabled and rule.topic) or message.topic in self._topics:
            return []
        if len(self._topics) < self._rules.max_tracked:
            self._topics.add(message.topic)
        if self._learning(message.received_at_s):
            return []
        return [
            Finding(
                Stage.ANOMALY,
                "new-topic",
                rule.severity,
                rule.action,
                f"topic {message.topic!r} never seen before",
                message.client_id,
            )
        ]

    def _rate(self, state: _Publisher, message: AlertMessage) -> list[Finding]:
        rule = self._rules.rate
        bucket = int(message.received_at_s // rule.bucket_s)
        if bucket > state.bucket:
            state.rate.add(state.count)
            for _ in range(min(bucket - state.bucket - 1, MAX_GAP_BUCKETS)):
                state.rate.add(0)
            state.bucket, state.count = bucket, 0
        state.count += 1
        if not rule.enabled or state.rate.n < rule.min_buckets:
            return []
        limit = state.rate.mean + rule.z_threshold * state.rate.std(rule.min_std)
        if state.count <= limit:
            return []
        return [
            Finding(
                Stage.ANOMALY,
                "rate",
                rule.severity,
                rule.action,
                f"{state.count} messages in {rule.bucket_s:g} s from "
                f"{message.publisher!r}; its baseline is {state.rate.mean:.1f}",
                message.client_id,
            )
        ]

    def _size(self, state: _Publisher, message: AlertMessage) -> list[Finding]:
        rule = self._rules.payload_size
        size = len(message.payload)
        findings: list[Finding] = []
        if rule.enabled and state.size.n >= rule.min_samples:
            z = (size - state.size.mean) / state.size.std(rule.min_std_bytes)
            if abs(z) > rule.z_threshold:
                findings.append(
                    Finding(
                        Stage.ANOMALY,
                        "payload-size",
                        rule.severity,
                        rule.action,
                        f"payload of {size} bytes (z = {z:.1f}) from {message.publisher!r}; "
                        f"its usual size is {state.size.mean:.0f}",
                        message.client_id,
                    )
                )
        state.size.add(size)
        return findings

    def _beacon(self, state: _Publisher, message: AlertMessage) -> list[Finding]:
        rule = self._rules.beaconing
        now = message.received_at_s
        last, state.last_at_s = state.last_at_s, now
        if last is None:
            return []
        state.intervals.append(now - last)
        if len(state.intervals) > rule.samples:
            state.intervals.popleft()
        if not rule.enabled or len(state.intervals) < rule.samples:
            return []
        mean = sum(state.intervals) / len(state.intervals)
        if not rule.min_interval_s <= mean <= rule.max_interval_s:
            return []
        std = math.sqrt(sum((x - mean) ** 2 for x in state.intervals) / len(state.intervals))
        if std / mean >= rule.max_jitter_ratio:
            return []
        return [
            Finding(
                Stage.ANOMALY,
                "beaconing",
                rule.severity,
                rule.action,
                f"{message.publisher!r} sends every {mean:.2f} s with "
                f"{100 * std / mean:.1f} % jitter",
                message.client_id,
            )
        ]
