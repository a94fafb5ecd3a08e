"""Expectations evaluated against a timeline: pure functions, no I/O.

:func:`evaluate` answers PASSED, FAILED or PENDING (not decided yet: the bound has not
run out). The runner calls it as the timeline grows until every expectation of a step is
decided; unit tests call it with hand-built timelines. A failure says what was expected and
what was observed instead. One evaluator and one description per kind of expectation,
registered with ``functools.singledispatch``; the window rules they share are in
:mod:`~bench.scenario.windows`, latency pairing in :mod:`~bench.scenario.latency`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from backend.contract import Severity
from bench.scenario.checks import (
    AlertExpect,
    AuditExpect,
    Check,
    CommandExpect,
    DeviceExpect,
    LatencyExpect,
    LinkExpect,
    LockExpect,
    MetricExpect,
    NoAlertExpect,
    NoCommandExpect,
)
from bench.scenario.latency import event_matches, latency_outcome, pair_events
from bench.scenario.schema import ExpectationItem
from bench.scenario.timeline import Event, EventKind, Timeline
from bench.scenario.token_checks import evaluate_connect, evaluate_publish, evaluate_subscribe
from bench.scenario.windows import (
    Outcome,
    Verdict,
    never,
    state_in_window,
    within,
)
from bench.scenario.wording import describe

__all__ = [
    "Context",
    "Outcome",
    "Verdict",
    "deadline",
    "describe",
    "evaluate",
    "event_matches",
    "metric_matches",
    "pair_events",
]


@dataclass(frozen=True)
class Context:
    """What the evaluation needs to know about the scenario, beyond the timeline.

    ``node_devices`` are devices whose received commands the runner records itself (as
    COMMAND events with source ``node``); for those, a command only counts once the
    device got it, not when it crossed the broker.
    """

    node_devices: frozenset[str] = frozenset()


@functools.singledispatch
def evaluate(
    body: object,
    timeline: Timeline,
    start: float,
    now: float,
    context: Context | None = None,
) -> Outcome:
    """Evaluate an expectation for a step whose action started at ``start``.

    ``body`` is an expectation model of :mod:`bench.scenario.checks` (or an ``expect``
    entry holding one); each kind has its own evaluator, registered below.
    """
    raise TypeError(f"no evaluator for {type(body).__name__}")


@evaluate.register
def _(
    item: ExpectationItem,
    timeline: Timeline,
    start: float,
    now: float,
    context: Context | None = None,
) -> Outcome:
    return evaluate(item.body, timeline, start, now, context)


def deadline(body: Check | ExpectationItem, start: float) -> float:
    """When an expectation is decided at the latest (``start`` for latency checks).

    A state that must hold (``for`` on ``lock``, ``device``, ``link``) is decided at the
    latest when its ``within`` and its ``for`` have both run out.
    """
    if isinstance(body, ExpectationItem):
        body = body.body
    within: float | None = getattr(body, "within", None)
    hold: float | None = getattr(body, "for_", None)
    if within is None:
        return start + float(hold or 0.0)
    return start + within + float(hold or 0.0)


def _severity_ok(event: Event, exact: Severity | None, minimum: Severity | None) -> bool:
    raw = event.get("severity")
    try:
        severity = Severity(raw)
    except ValueError:
        return exact is None and minimum is None
    if exact is not None and severity is not exact:
        return False
    return minimum is None or severity.rank >= minimum.rank


def _alert_matches(body: AlertExpect | NoAlertExpect) -> Callable[[Event], bool]:
    def matches(event: Event) -> bool:
        if event.kind is not EventKind.ALERT:
            return False
        if body.type is not None and event.get("type") != body.type:
            return False
        if body.device is not None and (event.device or event.get("device_id")) != body.device:
            return False
        if body.site is not None and event.site != body.site:
            return False
        if body.origin is not None and (event.get("origin_site") or event.site) != body.origin:
            return False
        if body.contains is not None and not any(
            body.contains.lower() in str(event.get(key) or "").lower()
            for key in ("title", "description")
        ):
            return False
        wanted = body.data if isinstance(body, AlertExpect) else {}
        if not all(_loosely_equal(event.get(key), value) for key, value in wanted.items()):
            return False
        return _severity_ok(event, body.severity, body.min_severity)

    return matches


# ---------------------------------------------------------------- evaluators

# Token clients (seed 004): judged in their own module.
evaluate.register(evaluate_connect)
evaluate.register(evaluate_subscribe)
evaluate.register(evaluate_publish)


@evaluate.register
def _alert(
    body: AlertExpect, timeline: Timeline, start: float, now: float, context: Context | None = None
) -> Outcome:
    expected = describe(body)
    outcome = within(
        timeline,
        start,
        now,
        bound=body.within,
        count=body.count,
        matches=_alert_matches(body),
        expected=expected,
        related=lambda e: e.kind is EventKind.ALERT,
        noun="alert",
        since=0.0 if body.scope == "scenario" else None,
    )
    if outcome.verdict is not Verdict.FAILED or not body.data:
        return outcome
    # The alert came but a field differs: say which, and how (a verbatim check's story).
    loose = _alert_matches(body.model_copy(update={"data": {}}))
    near = [event for event in outcome.evidence if loose(event)]
    if not near:
        return outcome
    differ = "; ".join(
        f"{key}: expected {value!r}, got {near[0].get(key)!r}"
        for key, value in body.data.items()
        if not _loosely_equal(near[0].get(key), value)
    )
    return replace(outcome, observed=f"{outcome.observed}; fields differ: {differ}")


@evaluate.register
def _no_alert(
    body: NoAlertExpect,
    timeline: Timeline,
    start: float,
    now: float,
    context: Context | None = None,
) -> Outcome:
    return never(
        timeline,
        start,
        now,
        window_s=body.for_,
        matches=_alert_matches(body),
        expected=describe(body),
    )


def _command_source_ok(event: Event, device: str, context: Context) -> bool:
    # A simulated node records what it received; only that proves the device got it.
    return event.source == "node" if device in context.node_devices else True


@evaluate.register
def _command(
    body: CommandExpect,
    timeline: Timeline,
    start: float,
    now: float,
    context: Context | None = None,
) -> Outcome:
    context = context or Context()

    def matches(event: Event) -> bool:
        return (
            event.kind is EventKind.COMMAND
            and event.device == body.device
            and event.get("verb") == body.verb.value
            and _command_source_ok(event, body.device, context)
        )

    return within(
        timeline,
        start,
        now,
        bound=body.within,
        count=body.count,
        matches=matches,
        expected=describe(body),
        related=lambda e: e.kind is EventKind.COMMAND and e.device == body.device,
        noun="command",
    )


@evaluate.register
def _no_command(
    body: NoCommandExpect,
    timeline: Timeline,
    start: float,
    now: float,
    context: Context | None = None,
) -> Outcome:
    def matches(event: Event) -> bool:
        return (
            event.kind is EventKind.COMMAND
            and event.device == body.device
            and (body.verb is None or event.get("verb") == body.verb.value)
        )

    return never(
        timeline,
        start,
        now,
        window_s=body.for_,
        matches=matches,
        expected=describe(body),
    )


@evaluate.register
def _device(
    body: DeviceExpect, timeline: Timeline, start: float, now: float, context: Context | None = None
) -> Outcome:
    expected = describe(body)

    def is_subject(event: Event) -> bool:
        return (
            event.kind is EventKind.DEVICE
            and event.device == body.device
            and (body.site is None or event.site == body.site)
        )

    if not body.registered:
        return never(
            timeline, 0.0, now, window_s=start + body.within, matches=is_subject, expected=expected
        )

    # last_seen is the backend's own clock: compared only with itself, never with ours.
    before = [event for event in timeline.before(start) if is_subject(event)]
    seen_at_start = _instant(before[-1].get("last_seen")) if before else None

    def satisfied(event: Event) -> bool:
        if body.seen_since_step:
            seen = _instant(event.get("last_seen"))
            if seen is None or (seen_at_start is not None and seen <= seen_at_start):
                return False
        if body.trust is not None and event.get("trust_status") != body.trust:
            return False
        if body.attestation is not None and event.get("attestation_status") != body.attestation:
            return False
        if body.firmware_version is not None and (
            event.get("firmware_version") != body.firmware_version
        ):
            return False
        risk = event.get("risk_score")
        if body.risk_min is not None and not (
            isinstance(risk, int | float) and risk >= body.risk_min
        ):
            return False
        return body.risk_max is None or (isinstance(risk, int | float) and risk <= body.risk_max)

    return state_in_window(
        timeline,
        start,
        now,
        bound=body.within,
        is_subject=is_subject,
        satisfied=satisfied,
        expected=expected,
        hold=body.for_,
    )


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


@evaluate.register
def _lock(
    body: LockExpect, timeline: Timeline, start: float, now: float, context: Context | None = None
) -> Outcome:
    return state_in_window(
        timeline,
        start,
        now,
        bound=body.within,
        is_subject=lambda e: e.kind is EventKind.LOCK and e.device == body.device,
        satisfied=lambda e: e.get("state") == body.state,
        expected=describe(body),
        hold=body.for_,
    )


@evaluate.register
def _link(
    body: LinkExpect, timeline: Timeline, start: float, now: float, context: Context | None = None
) -> Outcome:
    return state_in_window(
        timeline,
        start,
        now,
        bound=body.within,
        is_subject=lambda e: (
            e.kind is EventKind.LINK and e.site == body.site and e.get("peer") == body.peer
        ),
        satisfied=lambda e: e.get("status") == body.status,
        expected=describe(body),
        hold=body.for_,
    )


def _loosely_equal(actual: Any, wanted: Any) -> bool:
    return actual == wanted or (actual is not None and str(actual) == str(wanted))


@evaluate.register
def _audit(
    body: AuditExpect, timeline: Timeline, start: float, now: float, context: Context | None = None
) -> Outcome:
    def matches(event: Event) -> bool:
        if event.kind is not EventKind.AUDIT or event.get("type") != body.type:
            return False
        if body.site is not None and event.site != body.site:
            return False
        data = event.get("data") or {}
        if body.device is not None and body.device not in (
            event.device,
            data.get("device_id") if isinstance(data, dict) else None,
        ):
            return False
        return all(
            isinstance(data, dict) and _loosely_equal(data.get(key), value)
            for key, value in body.data.items()
        )

    return within(
        timeline,
        start,
        now,
        bound=body.within,
        count=body.count,
        matches=matches,
        expected=describe(body),
        related=lambda e: e.kind is EventKind.AUDIT,
        noun="audit entry",
        since=0.0 if body.scope == "scenario" else None,
    )


def metric_matches(body: MetricExpect, event: Event) -> bool:
    """A METRIC sample of the counter ``body`` names (at its site, if given)."""
    return (
        event.kind is EventKind.METRIC
        and event.get("name") == body.name
        and event.get("labels") == body.labels
        and (body.site is None or event.site == body.site)
    )


@evaluate.register
def _metric(
    body: MetricExpect, timeline: Timeline, start: float, now: float, context: Context | None = None
) -> Outcome:
    # The runner samples the counter when the step starts (the baseline) and while the
    # expectation is pending; samples are sums over matching label sets.
    expected = describe(body)
    baseline_events = [e for e in timeline.before(start) if metric_matches(body, e)]
    end = start + body.within
    samples = [e for e in timeline.between(start, min(now, end)) if metric_matches(body, e)]
    if not baseline_events and samples:
        baseline_events, samples = samples[:1], samples[1:]
    if not baseline_events:
        if now < end:
            return Outcome(Verdict.PENDING, expected)
        return Outcome(Verdict.FAILED, expected, "the counter was never read", at=end)
    base = float(baseline_events[-1].get("value") or 0.0)
    for sample in samples:
        if float(sample.get("value") or 0.0) - base >= body.increase:
            return Outcome(
                Verdict.PASSED,
                expected,
                f"{base:g} -> {sample.get('value')}",
                at=sample.t,
                latency_s=sample.t - start,
                evidence=(baseline_events[-1], sample),
            )
    if now < end:
        return Outcome(Verdict.PENDING, expected)
    last = samples[-1].get("value") if samples else base
    return Outcome(
        Verdict.FAILED,
        expected,
        f"{base:g} -> {last} (+{float(last or 0.0) - base:g})",
        at=end,
        evidence=(baseline_events[-1], *samples[-1:]),
    )


@evaluate.register
def _latency(
    body: LatencyExpect,
    timeline: Timeline,
    start: float,
    now: float,
    context: Context | None = None,
) -> Outcome:
    since = start if body.scope == "step" else 0.0
    return latency_outcome(body, timeline.between(since, now), now, describe(body))


# The Sentinel's kinds live in their own module; importing it registers them.
from bench.scenario import sentinel_checks as _sentinel_checks  # noqa: E402

del _sentinel_checks
