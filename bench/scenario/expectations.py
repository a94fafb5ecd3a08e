"""Expectations evaluated against a timeline: pure functions, no I/O.

:func:`evaluate` answers PASSED, FAILED or PENDING (not decided yet: the bound has not
run out). The runner calls it as the timeline grows until every expectation of a step is
decided; unit tests call it with hand-built timelines. A failure says what was expected and
what was observed instead. One evaluator and one description per kind of expectation,
registered on :func:`judge` with ``functools.singledispatch``; the window rules they share
are in :mod:`~bench.scenario.windows` (:func:`occurs`, :func:`absent` and :func:`reached` put
them in an expectation's own terms), latency pairing in :mod:`~bench.scenario.latency`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from backend.contract import Severity
from bench.scenario.checks import (
    AlertExpect,
    AlertFilter,
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
from bench.scenario.token_checks import judge_connect, judge_publish, judge_subscribe
from bench.scenario.windows import Outcome, Verdict, Window, never, state_in_window, within
from bench.scenario.wording import describe

__all__ = [
    "Context",
    "Outcome",
    "Verdict",
    "deadline",
    "describe",
    "evaluate",
    "event_matches",
    "judge",
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


def evaluate(
    body: object,
    timeline: Timeline,
    start: float,
    now: float,
    context: Context | None = None,
) -> Outcome:
    """Evaluate an expectation for a step whose action started at ``start``.

    ``body`` is an expectation model of :mod:`bench.scenario.checks` (or an ``expect``
    entry holding one); each kind has its own judge, registered on :func:`judge`.
    """
    return judge(body, Window(timeline, start, now), context or Context())


@functools.singledispatch
def judge(body: object, window: Window, context: Context) -> Outcome:
    """The verdict on one kind of expectation over ``window``: one judge per kind."""
    raise TypeError(f"no evaluator for {type(body).__name__}")


@judge.register
def _(item: ExpectationItem, window: Window, context: Context) -> Outcome:
    return judge(item.body, window, context)


class Counted(Protocol):
    """An expectation of ``count`` matching events ``within`` a bound."""

    @property
    def within(self) -> float: ...
    @property
    def count(self) -> int: ...


class Lasting(Protocol):
    """An expectation that nothing matching happens ``for`` a while."""

    @property
    def for_(self) -> float: ...


class Held(Protocol):
    """An expectation of a state reached ``within`` a bound and, if asked, held ``for``."""

    @property
    def within(self) -> float: ...
    @property
    def for_(self) -> float | None: ...


def occurs(
    body: Counted,
    window: Window,
    matches: Callable[[Event], bool],
    related: Callable[[Event], bool],
    noun: str,
    *,
    since: float | None = None,
) -> Outcome:
    """``body.count`` events that ``matches`` within its bound (failures list the related)."""
    return within(
        window,
        bound=body.within,
        count=body.count,
        matches=matches,
        expected=describe(body),
        related=related,
        noun=noun,
        since=since,
    )


def absent(body: Lasting, window: Window, matches: Callable[[Event], bool]) -> Outcome:
    """Nothing that ``matches`` for ``body.for_`` seconds."""
    return never(window, window_s=body.for_, matches=matches, expected=describe(body))


def reached(
    body: Held,
    window: Window,
    is_subject: Callable[[Event], bool],
    satisfied: Callable[[Event], bool],
) -> Outcome:
    """The subject's state ``satisfied`` within the body's bound, held for ``body.for_``."""
    return state_in_window(
        window,
        bound=body.within,
        is_subject=is_subject,
        satisfied=satisfied,
        expected=describe(body),
        hold=body.for_,
    )


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


def severity_ok(event: Event, exact: Severity | None, minimum: Severity | None) -> bool:
    """The event's severity is ``exact`` (if given) and at least ``minimum`` (if given)."""
    raw = event.get("severity")
    try:
        severity = Severity(raw)
    except ValueError:
        return exact is None and minimum is None
    if exact is not None and severity is not exact:
        return False
    return minimum is None or severity.rank >= minimum.rank


def _alert_matches(body: AlertFilter) -> Callable[[Event], bool]:
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
        return severity_ok(event, body.severity, body.min_severity)

    return matches


# ---------------------------------------------------------------- evaluators

# Token clients (seed 004): judged in their own module.
judge.register(judge_connect)
judge.register(judge_subscribe)
judge.register(judge_publish)


@judge.register
def _alert(body: AlertExpect, window: Window, context: Context) -> Outcome:
    since = 0.0 if body.scope == "scenario" else None
    related = _of_kind(EventKind.ALERT)
    outcome = occurs(body, window, _alert_matches(body), related, "alert", since=since)
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


@judge.register
def _no_alert(body: NoAlertExpect, window: Window, context: Context) -> Outcome:
    return absent(body, window, _alert_matches(body))


def _of_kind(kind: EventKind) -> Callable[[Event], bool]:
    return lambda event: event.kind is kind


def _command_source_ok(event: Event, device: str, context: Context) -> bool:
    # A simulated node records what it received; only that proves the device got it.
    return event.source == "node" if device in context.node_devices else True


def _to_device(body: CommandExpect | NoCommandExpect) -> Callable[[Event], bool]:
    return lambda event: event.kind is EventKind.COMMAND and event.device == body.device


@judge.register
def _command(body: CommandExpect, window: Window, context: Context) -> Outcome:
    def matches(event: Event) -> bool:
        return (
            _to_device(body)(event)
            and event.get("verb") == body.verb.value
            and _command_source_ok(event, body.device, context)
        )

    return occurs(body, window, matches, _to_device(body), "command")


@judge.register
def _no_command(body: NoCommandExpect, window: Window, context: Context) -> Outcome:
    verb = body.verb

    def matches(event: Event) -> bool:
        return _to_device(body)(event) and (verb is None or event.get("verb") == verb.value)

    return absent(body, window, matches)


@judge.register
def _device(body: DeviceExpect, window: Window, context: Context) -> Outcome:
    def is_subject(event: Event) -> bool:
        return (
            event.kind is EventKind.DEVICE
            and event.device == body.device
            and (body.site is None or event.site == body.site)
        )

    if not body.registered:
        # Never registered, not even before the step: watched from the scenario's start.
        return never(
            replace(window, start=0.0),
            window_s=window.start + body.within,
            matches=is_subject,
            expected=describe(body),
        )

    # last_seen is the backend's own clock: compared only with itself, never with ours.
    before = [event for event in window.timeline.before(window.start) if is_subject(event)]
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

    return reached(body, window, is_subject, satisfied)


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


@judge.register
def _lock(body: LockExpect, window: Window, context: Context) -> Outcome:
    return reached(
        body,
        window,
        is_subject=lambda e: e.kind is EventKind.LOCK and e.device == body.device,
        satisfied=lambda e: e.get("state") == body.state,
    )


@judge.register
def _link(body: LinkExpect, window: Window, context: Context) -> Outcome:
    return reached(
        body,
        window,
        is_subject=lambda e: (
            e.kind is EventKind.LINK and e.site == body.site and e.get("peer") == body.peer
        ),
        satisfied=lambda e: e.get("status") == body.status,
    )


def _loosely_equal(actual: Any, wanted: Any) -> bool:
    return actual == wanted or (actual is not None and str(actual) == str(wanted))


@judge.register
def _audit(body: AuditExpect, window: Window, context: Context) -> Outcome:
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

    since = 0.0 if body.scope == "scenario" else None
    return occurs(body, window, matches, _of_kind(EventKind.AUDIT), "audit entry", since=since)


def metric_matches(body: MetricExpect, event: Event) -> bool:
    """A METRIC sample of the counter ``body`` names (at its site, if given)."""
    return (
        event.kind is EventKind.METRIC
        and event.get("name") == body.name
        and event.get("labels") == body.labels
        and (body.site is None or event.site == body.site)
    )


@judge.register
def _metric(body: MetricExpect, window: Window, context: Context) -> Outcome:
    # The runner samples the counter when the step starts (the baseline) and while the
    # expectation is pending; samples are sums over matching label sets.
    expected = describe(body)
    start, now = window.start, window.now
    baseline_events = [e for e in window.timeline.before(start) if metric_matches(body, e)]
    end = start + body.within
    samples = [e for e in window.upto(end) if metric_matches(body, e)]
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


@judge.register
def _latency(body: LatencyExpect, window: Window, context: Context) -> Outcome:
    since = window.start if body.scope == "step" else 0.0
    events = window.timeline.between(since, window.now)
    return latency_outcome(body, events, window.now, describe(body))


# The Sentinel's kinds live in their own module; importing it registers them.
from bench.scenario import sentinel_checks as _sentinel_checks  # noqa: E402

del _sentinel_checks
