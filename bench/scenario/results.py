"""What a scenario run produced: per step and per expectation, plus the whole timeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.scenario.expectations import Verdict
from bench.scenario.timeline import Event


@dataclass
class ExpectationResult:
    """One expectation's final outcome; ``context`` is the timeline around the decision."""

    description: str
    verdict: Verdict
    expected: str
    observed: str
    at: float | None = None
    #: The expectation's YAML key (``lock``, ``alert``...), for grouping in reports.
    kind: str = ""
    latency_s: float | None = None
    figures: dict[str, float] = field(default_factory=dict)
    context: list[Event] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when the expectation was met."""
        return self.verdict is Verdict.PASSED

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {
            "description": self.description,
            "kind": self.kind,
            "verdict": self.verdict.value,
            "expected": self.expected,
            "observed": self.observed,
            "at": self.at,
            "latency_s": self.latency_s,
            "figures": self.figures,
            "context": [event.to_json() for event in self.context],
        }


@dataclass
class StepResult:
    """One step: when it ran, how long its action took, and its expectations."""

    name: str
    action: str | None
    started: float
    action_s: float = 0.0
    ended: float = 0.0
    detail: str = ""
    error: str | None = None
    expectations: list[ExpectationResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """No error and every expectation met."""
        return self.error is None and all(e.passed for e in self.expectations)

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {
            "name": self.name,
            "action": self.action,
            "started": round(self.started, 6),
            "action_s": round(self.action_s, 6),
            "ended": round(self.ended, 6),
            "detail": self.detail,
            "error": self.error,
            "passed": self.passed,
            "expectations": [e.to_json() for e in self.expectations],
        }


@dataclass
class ScenarioResult:
    """A whole scenario run. ``error`` is set when it could not run to the end."""

    name: str
    path: str
    started_at: str = ""
    duration_s: float = 0.0
    steps: list[StepResult] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    error: str | None = None
    error_context: list[Event] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when nothing failed."""
        return self.error is None and bool(self.steps) and all(s.passed for s in self.steps)

    def failures(self) -> list[tuple[StepResult, ExpectationResult | None]]:
        """Failed steps with the expectation that failed (None for a step error)."""
        found: list[tuple[StepResult, ExpectationResult | None]] = []
        for step in self.steps:
            if step.error is not None:
                found.append((step, None))
            found.extend((step, e) for e in step.expectations if not e.passed)
        return found

    def latencies(self) -> list[tuple[str, float]]:
        """``("<step>: <expectation>", seconds)`` for every expectation that timed a latency."""
        return [
            (f"{step.name}: {e.description}", e.latency_s)
            for step in self.steps
            for e in step.expectations
            if e.latency_s is not None
        ]

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {
            "name": self.name,
            "path": self.path,
            "passed": self.passed,
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 6),
            "error": self.error,
            "steps": [step.to_json() for step in self.steps],
            "events": [event.to_json() for event in self.events],
        }


def failure_text(result: ScenarioResult, context_limit: int = 25) -> str:
    """Why ``result`` failed: expected vs observed, with the timeline around each failure."""
    lines = [f"scenario {result.name!r} ({result.path}) FAILED"]
    if result.error is not None:
        lines.append(f"  error: {result.error}")
        lines.extend(_context_lines(result.error_context[-context_limit:]))
    for step, expectation in result.failures():
        if expectation is None:
            lines.append(f"  step {step.name!r}: {step.error}")
            continue
        lines.append(f"  step {step.name!r} (started at {step.started:.3f}s):")
        lines.append(f"    expected: {expectation.expected}")
        lines.append(f"    observed: {expectation.observed}")
        lines.extend(_context_lines(expectation.context[:context_limit], expectation.at))
    return "\n".join(lines)


def _context_lines(events: list[Event], at: float | None = None) -> list[str]:
    if not events:
        return ["    timeline: (nothing observed around it)"]
    lines = ["    timeline around it:"]
    marked = False
    for event in events:
        if at is not None and not marked and event.t > at:
            lines.append(f"      {at:9.3f}s  <-- decided here")
            marked = True
        lines.append(f"      {event.t:9.3f}s  {event.summary()}")
    if at is not None and not marked:
        lines.append(f"      {at:9.3f}s  <-- decided here")
    return lines
