"""The inspection pipeline (seed 003): pattern matching -> anomaly detection -> auth
verification -> security event aggregator, as one pure object a worker drives.

``Inspector.inspect(message)`` returns the verdict for the message and the security events
to emit now; ``Inspector.observe_auth(event)`` does the same for an audited auth decision.
Nothing here does I/O or reads a clock: the worker passes the time in each message, which
makes every decision reproducible from a captured stream.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from backend.sentinel.inspection.aggregator import Aggregator
from backend.sentinel.inspection.anomaly import AnomalyStage
from backend.sentinel.inspection.auth import AuthStage
from backend.sentinel.inspection.flood import FloodGuard
from backend.sentinel.inspection.model import (
    AlertMessage,
    AuthEvent,
    Finding,
    Inspection,
    SecurityEvent,
    Stage,
)
from backend.sentinel.inspection.patterns import PatternStage
from backend.sentinel.inspection.rules import Rules


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the pipeline decided for one message, and what it has to report."""

    inspection: Inspection
    events: tuple[SecurityEvent, ...]
    #: Seconds each stage took (perf_counter deltas; for histograms, never for decisions).
    stage_s: dict[Stage, float] = field(default_factory=dict)


class Inspector:
    """All stages with their state; one per worker (or per partition of clients)."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.patterns = PatternStage(rules)
        self.anomaly = AnomalyStage(rules.anomaly)
        self.auth = AuthStage(rules.auth)
        self.aggregator = Aggregator(rules.aggregation)
        self.flood = FloodGuard(rules.limits)

    def admit(self, message: AlertMessage) -> tuple[bool, tuple[SecurityEvent, ...]]:
        """Whether the message is within its client's rate; events for a flood if not."""
        finding = self.flood.admit(message)
        if finding is None:
            return True, ()
        return False, self._aggregate([finding], message.received_at_s)

    def inspect(self, message: AlertMessage, *, timed: bool = False) -> Outcome:
        """Run the message through every stage; a block anywhere quarantines it.

        Every stage runs even after a block, so the anomaly baselines see the whole stream
        and the events say everything that was wrong with a message.
        """
        if not timed:
            findings = self.patterns.inspect(message)
            findings += self.anomaly.inspect(message)
            findings += self.auth.inspect(message)
            return Outcome(
                Inspection.of(findings), self._aggregate(findings, message.received_at_s)
            )
        findings = []
        stage_s: dict[Stage, float] = {}
        for stage, run in (
            (Stage.PATTERN, self.patterns.inspect),
            (Stage.ANOMALY, self.anomaly.inspect),
            (Stage.AUTH, self.auth.inspect),
        ):
            started = time.perf_counter()
            findings.extend(run(message))
            stage_s[stage] = time.perf_counter() - started
        return Outcome(
            Inspection.of(findings), self._aggregate(findings, message.received_at_s), stage_s
        )

    def observe_auth(self, event: AuthEvent) -> tuple[SecurityEvent, ...]:
        """Fold an audited auth decision in; returns events to emit now."""
        return self._aggregate(self.auth.observe(event), event.at_s)

    def share_iocs(self, iocs: Iterable[tuple[str, str]]) -> int:
        """IOCs ``(value, origin_site)`` a peer shared become patterns now; returns new ones."""
        return self.patterns.set_iocs(iocs)

    def tick(self, now_s: float) -> tuple[SecurityEvent, ...]:
        """Close aggregation windows that ended (call it when idle, e.g. every second)."""
        return tuple(self.aggregator.flush(now_s))

    def _aggregate(self, findings: list[Finding], now_s: float) -> tuple[SecurityEvent, ...]:
        if not findings:
            return tuple(self.aggregator.flush(now_s)) if self.aggregator.open_windows else ()
        events: list[SecurityEvent] = []
        for finding in findings:
            events.extend(self.aggregator.add(finding, now_s))
        return tuple(events)
