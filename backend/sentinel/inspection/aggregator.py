"""The security event aggregator: many findings, few events.

One event per (rule, client) per window: the first finding opens it and is emitted at once
(an operator hears of a threat without waiting for the window); later findings in the
window only count; when the window closes, an event that counted more than one finding is
emitted again, closed, with its final count. So credential stuffing with 500 failed logins
is one event that says 500, not 500 events.
"""

from __future__ import annotations

from dataclasses import replace

from backend.sentinel.inspection.model import SEVERITY_RANK, Finding, SecurityEvent
from backend.sentinel.inspection.rules import Aggregation

#: Open windows kept at most; beyond it the oldest are closed early (bounded memory).
MAX_OPEN = 100_000


class Aggregator:
    """Folds findings into :class:`SecurityEvent` s; feed it in time order."""

    def __init__(self, rules: Aggregation) -> None:
        self._rules = rules
        self._open: dict[tuple[str, str], SecurityEvent] = {}

    @property
    def open_windows(self) -> int:
        """Events whose window is still open."""
        return len(self._open)

    def add(self, finding: Finding, now_s: float) -> list[SecurityEvent]:
        """Fold one finding in; returns events to emit now (closed ones first)."""
        emitted = self.flush(now_s)
        key = (finding.rule, finding.client_id)
        event = self._open.get(key)
        if event is None:
            event = SecurityEvent(
                stage=finding.stage,
                rule=finding.rule,
                client_id=finding.client_id,
                severity=finding.severity,
                first_at_s=now_s,
                last_at_s=now_s,
                count=1,
                detail=finding.detail,
                samples=(finding.detail,) if self._rules.samples else (),
            )
            self._open[key] = event
            if len(self._open) > MAX_OPEN:
                emitted.extend(self._close(next(iter(self._open))))
            emitted.append(event)
            return emitted
        samples = event.samples
        if len(samples) < self._rules.samples and finding.detail not in samples:
            samples = (*samples, finding.detail)
        severity = max(event.severity, finding.severity, key=SEVERITY_RANK.__getitem__)
        self._open[key] = replace(
            event,
            last_at_s=now_s,
            count=event.count + 1,
            severity=severity,
            detail=finding.detail,
            samples=samples,
        )
        return emitted

    def flush(self, now_s: float) -> list[SecurityEvent]:
        """Close every window older than ``window_s``; returns those worth re-emitting."""
        # Windows open in time order and a dict keeps insertion order (an update keeps the
        # key's place), so the expired ones are a prefix: stop at the first still open.
        closed: list[SecurityEvent] = []
        while self._open:
            key, event = next(iter(self._open.items()))
            if now_s - event.first_at_s < self._rules.window_s:
                break
            closed.extend(self._close(key))
        return closed

    def _close(self, key: tuple[str, str]) -> list[SecurityEvent]:
        event = self._open.pop(key)
        return [replace(event, closed=True)] if event.count > 1 else []
