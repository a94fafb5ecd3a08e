"""Expectations evaluated against a timeline: pure functions, no I/O.

:func:`evaluate` answers PASSED, FAILED or PENDING (not decided yet: the bound has not
run out). The runner calls it as the timeline grows until every expectation of a step is
decided; unit tests call it with hand-built timelines. A failure says what was expected and
what was observed instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from backend.contract import Severity
from bench.load.summary import percentile_of
from bench.scenario.checks import (
    AlertExpect,
    AuditExpect,
    Check,
    CommandExpect,
    DeviceExpect,
    EventMatch,
    LatencyExpect,
    LinkExpect,
    LockExpect,
    MetricExpect,
    NoAlertExpect,
    NoCommandExpect,
)
from bench.scenario.schema import ExpectationItem
from bench.scenario.timeline import Event, EventKind, Timeline


class Verdict(StrEnum):
    """The state of one expectation."""

    PASSED = "passed"
    FAILED = "failed"
    PENDING = "pending"


@dataclass(frozen=True)
class Outcome:
    """What one evaluation found.

    ``at`` is when it was decided on the timeline (the satisfying event, or the end of
    the bound); ``latency_s`` the time from the step's start to the satisfying event.
    """

    verdict: Verdict
    expected: str
    observed: str = ""
    at: float | None = None
    latency_s: float | None = None
    evidence: tuple[Event, ...] = ()
    figures: dict[str, float] = field(default_factory=dict)

    @property
    def decided(self) -> bool:
        """True once PASSED or FAILED."""
        return self.verdict is not Verdict.PENDING


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


@functools.singledispatch
def describe(body: object) -> str:
    """The expectation in words."""
    raise TypeError(f"no description for {type(body).__name__}")


@describe.register
def _(item: ExpectationItem) -> str:
    return describe(item.body)


@describe.register
def _(body: AlertExpect) -> str:
    scope = " (since the scenario began)" if body.scope == "scenario" else ""
    n = _count(body.count, "alert")
    return f"{n} {_alert_filter(body)} within {_s(body.within)}{scope}"


@describe.register
def _(body: NoAlertExpect) -> str:
    return f"no alert {_alert_filter(body)} for {_s(body.for_)}"


@describe.register
def _(body: DeviceExpect) -> str:
    return f"device {body.device} {_device_filter(body)} within {_s(body.within)}{_held(body)}"


@describe.register
def _(body: CommandExpect) -> str:
    n = _count(body.count, f"`{body.verb.value}` command")
    return f"{n} received by {body.device} within {_s(body.within)}"


@describe.register
def _(body: NoCommandExpect) -> str:
    verb = f"`{body.verb.value}` " if body.verb else ""
    return f"no {verb}command to {body.device} for {_s(body.for_)}"


@describe.register
def _(body: LockExpect) -> str:
    return f"door {body.device} {body.state} within {_s(body.within)}{_held(body)}"


@describe.register
def _(body: AuditExpect) -> str:
    extra = _fields(body.data, device=body.device, site=body.site)
    n = _count(body.count, f"audit entry `{body.type}`")
    scope = " (since the scenario began)" if body.scope == "scenario" else ""
    return f"{n}{extra} within {_s(body.within)}{scope}"


@describe.register
def _(body: LinkExpect) -> str:
    return (
        f"link {body.site}<->{body.peer} {body.status} as {body.site} sees it "
        f"within {_s(body.within)}{_held(body)}"
    )


@describe.register
def _(body: MetricExpect) -> str:
    labels = ",".join(f"{k}={v}" for k, v in body.labels.items())
    where = f" at site {body.site}" if body.site else ""
    return f"{body.name}{{{labels}}}{where} up by >= {body.increase:g} within {_s(body.within)}"


@describe.register
def _(body: LatencyExpect) -> str:
    bounds = ", ".join(
        f"{name} <= {_s(value)}"
        for name, value in (("p50", body.p50), ("p99", body.p99), ("max", body.max))
        if value is not None
    )
    return f"latency {_match_text(body.from_)} -> {_match_text(body.to)}: {bounds}"


def _held(body: LockExpect | DeviceExpect | LinkExpect) -> str:
    return "" if body.for_ is None else f", then held for {_s(body.for_)}"


# ---------------------------------------------------------------- helpers


def _s(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:g}s"


def _count(count: int, noun: str) -> str:
    return (
        f"an {noun}"
        if count == 1 and noun.lstrip("`")[0] in "aeiou"
        else (f"a {noun}" if count == 1 else f"{count} x {noun}")
    )


def _fields(values: dict[str, Any], **more: Any) -> str:
    shown = {**{k: v for k, v in more.items() if v is not None}, **values}
    return "".join(f" {k}={v}" for k, v in shown.items())


def _alert_filter(body: AlertExpect | NoAlertExpect) -> str:
    parts = _fields(
        body.data if isinstance(body, AlertExpect) else {},
        type=body.type,
        severity=body.severity.value if body.severity else None,
        min_severity=body.min_severity.value if body.min_severity else None,
        device=body.device,
        origin=body.origin,
        contains=repr(body.contains) if body.contains else None,
    ).strip()
    where = f"at site {body.site}" if body.site else "at any site"
    return f"{parts} {where}".strip()


def _device_filter(body: DeviceExpect) -> str:
    if not body.registered:
        return "not registered"
    return (
        _fields(
            {},
            trust=body.trust,
            attestation=body.attestation,
            risk_min=body.risk_min,
            risk_max=body.risk_max,
            firmware_version=body.firmware_version,
            site=body.site,
            last_seen="refreshed" if body.seen_since_step else None,
        ).strip()
        or "registered"
    )


def _match_text(match: EventMatch) -> str:
    extra = _fields(
        {},
        device=match.device,
        verb=match.verb.value if match.verb else None,
        type=match.type,
        message=match.message.value if match.message else None,
        state=match.state,
        site=match.site,
        source=match.source,
    )
    return f"{match.event}{extra}"


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


def _observed(events: Sequence[Event], noun: str, limit: int = 5) -> str:
    if not events:
        return f"no {noun} at all"
    shown = "; ".join(f"{e.summary()} at {e.t:.3f}s" for e in events[:limit])
    more = f" (+{len(events) - limit} more)" if len(events) > limit else ""
    return f"{len(events)} other {noun}(s): {shown}{more}"


def _within(
    timeline: Timeline,
    start: float,
    now: float,
    *,
    bound: float,
    count: int,
    matches: Callable[[Event], bool],
    expected: str,
    related: Callable[[Event], bool],
    noun: str,
    since: float | None = None,
) -> Outcome:
    """Pass at the ``count``-th matching event in ``[since or start, start + bound]``."""
    end = start + bound
    window = timeline.between(since if since is not None else start, min(now, end))
    hits = [event for event in window if matches(event)]
    if len(hits) >= count:
        hit = hits[count - 1]
        return Outcome(
            Verdict.PASSED,
            expected,
            hit.summary(),
            at=max(hit.t, start),
            latency_s=max(0.0, hit.t - start),
            evidence=tuple(hits[:count]),
        )
    if now < end:
        return Outcome(Verdict.PENDING, expected)
    others = [event for event in window if related(event) and not matches(event)]
    seen = f"{len(hits)} matching, " if hits else ""
    return Outcome(
        Verdict.FAILED,
        expected,
        seen + _observed(others, noun),
        at=end,
        evidence=tuple(hits + others),
    )


def _never(
    timeline: Timeline,
    start: float,
    now: float,
    *,
    window_s: float,
    matches: Callable[[Event], bool],
    expected: str,
) -> Outcome:
    """Pass when nothing matching happened in ``[start, start + window_s]``."""
    end = start + window_s
    hits = [event for event in timeline.between(start, min(now, end)) if matches(event)]
    if hits:
        first = hits[0]
        return Outcome(
            Verdict.FAILED,
            expected,
            f"{first.summary()} at {first.t:.3f}s",
            at=first.t,
            latency_s=first.t - start,
            evidence=tuple(hits),
        )
    if now < end:
        return Outcome(Verdict.PENDING, expected)
    return Outcome(Verdict.PASSED, expected, "nothing", at=end)


def _state_in_window(
    timeline: Timeline,
    start: float,
    now: float,
    *,
    bound: float,
    is_subject: Callable[[Event], bool],
    satisfied: Callable[[Event], bool],
    expected: str,
    hold: float | None = None,
) -> Outcome:
    """State snapshots: the one in effect at ``start``, then every change until the bound.

    With ``hold``, the first time the state is reached it must then last ``hold`` seconds
    without a change away: a state that comes and goes fails at the change, even if it
    comes back (a flapping door is not "held in lockdown").
    """
    end = start + bound
    current = [event for event in timeline.before(start) if is_subject(event)]
    candidates = current[-1:] + [
        event for event in timeline.between(start, min(now, end)) if is_subject(event)
    ]
    for event in candidates:
        if satisfied(event):
            at = max(event.t, start)
            if hold is None:
                return Outcome(
                    Verdict.PASSED,
                    expected,
                    event.summary(),
                    at=at,
                    latency_s=at - start,
                    evidence=(event,),
                )
            return _held_from(
                timeline, event, at, start, now, hold, is_subject, satisfied, expected
            )
    if now < end:
        return Outcome(Verdict.PENDING, expected)
    if not candidates:
        observed = "never observed"
    else:
        observed = "; ".join(f"{e.summary()} at {e.t:.3f}s" for e in candidates[-5:])
    return Outcome(Verdict.FAILED, expected, observed, at=end, evidence=tuple(candidates[-5:]))


def _held_from(  # noqa: PLR0917 - the state of one evaluation, passed on
    timeline: Timeline,
    reached: Event,
    at: float,
    start: float,
    now: float,
    hold: float,
    is_subject: Callable[[Event], bool],
    satisfied: Callable[[Event], bool],
    expected: str,
) -> Outcome:
    """The state was reached by ``reached`` at ``at``: did it last ``hold`` seconds?"""
    until = at + hold
    for event in timeline.between(at, min(now, until)):
        if event is reached or not is_subject(event) or satisfied(event):
            continue
        return Outcome(
            Verdict.FAILED,
            expected,
            f"{reached.summary()} at {reached.t:.3f}s, then {event.summary()} at "
            f"{event.t:.3f}s (held {_s(event.t - at)} of {_s(hold)})",
            at=event.t,
            evidence=(reached, event),
        )
    if now < until:
        return Outcome(Verdict.PENDING, expected)
    return Outcome(
        Verdict.PASSED,
        expected,
        f"{reached.summary()}, held {_s(hold)}",
        at=until,
        latency_s=at - start,
        evidence=(reached,),
    )


# ---------------------------------------------------------------- evaluators


@evaluate.register
def _alert(
    body: AlertExpect, timeline: Timeline, start: float, now: float, context: Context | None = None
) -> Outcome:
    expected = describe(body)
    return _within(
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


@evaluate.register
def _no_alert(
    body: NoAlertExpect,
    timeline: Timeline,
    start: float,
    now: float,
    context: Context | None = None,
) -> Outcome:
    return _never(
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

    return _within(
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

    return _never(
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
        return _never(
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

    return _state_in_window(
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
    return _state_in_window(
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
    return _state_in_window(
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

    return _within(
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


# ---------------------------------------------------------------- latency


def event_matches(match: EventMatch, event: Event) -> bool:
    """Whether ``event`` is one end of a latency pair described by ``match``."""
    if match.device is not None and event.device != match.device:
        return False
    if match.site is not None and event.site != match.site:
        return False
    if match.type is not None and event.get("type") != match.type:
        return False
    if match.source is not None and event.source != match.source:
        return False
    match match.event:
        case "badge":
            return event.kind is EventKind.MQTT and event.get("message") == "badge_event"
        case "command":
            return event.kind is EventKind.COMMAND and (
                match.verb is None or event.get("verb") == match.verb.value
            )
        case "alert":
            return event.kind is EventKind.ALERT
        case "audit":
            return event.kind is EventKind.AUDIT
        case "mqtt":
            return event.kind is EventKind.MQTT and (
                match.message is None or event.get("message") == match.message.value
            )
        case "lock":
            return event.kind is EventKind.LOCK and (
                match.state is None or event.get("state") == match.state
            )
        case "action":
            return event.kind is EventKind.ACTION and (
                match.type is None or event.get("type") == match.type
            )
    return False  # pragma: no cover


def pair_events(
    body: LatencyExpect, events: Iterable[Event]
) -> tuple[list[tuple[Event, Event]], list[Event]]:
    """Pair each ``from`` event with the first later ``to`` event; returns (pairs, unpaired)."""
    pairs: list[tuple[Event, Event]] = []
    waiting: list[Event] = []
    for event in events:
        # An event may be a `to` of an earlier `from` and a new `from` itself.
        if event_matches(body.to, event):
            for index, origin in enumerate(waiting):
                if _same_pair(body, origin, event):
                    pairs.append((origin, event))
                    del waiting[index]
                    break
        if event_matches(body.from_, event):
            waiting.append(event)
    return pairs, waiting


def _same_pair(body: LatencyExpect, origin: Event, target: Event) -> bool:
    if body.pair_by == "order":
        return True
    if body.pair_by == "alert_id":
        key_a = origin.get("origin_alert_id") or origin.get("id")
        key_b = target.get("origin_alert_id") or target.get("id")
        return key_a is not None and str(key_a) == str(key_b)
    return origin.device is not None and origin.device == target.device


@evaluate.register
def _latency(
    body: LatencyExpect,
    timeline: Timeline,
    start: float,
    now: float,
    context: Context | None = None,
) -> Outcome:
    expected = describe(body)
    since = start if body.scope == "step" else 0.0
    pairs, unpaired = pair_events(body, timeline.between(since, now))
    durations = [target.t - origin.t for origin, target in pairs]
    if len(durations) < body.min_pairs:
        return Outcome(
            Verdict.FAILED,
            expected,
            f"only {len(durations)} pair(s) found, {len(unpaired)} `from` event(s) unanswered; "
            f"need at least {body.min_pairs}",
            at=now,
            evidence=tuple(unpaired[:10]),
        )
    # durations is not empty here (min_pairs >= 1), so the percentiles are numbers.
    figures = {
        "pairs": float(len(durations)),
        "p50": percentile_of(durations, 0.50) or 0.0,
        "p99": percentile_of(durations, 0.99) or 0.0,
        "max": max(durations),
    }
    broken = [
        f"{name} {_s(figures[name])} > {_s(bound)}"
        for name, bound in (("p50", body.p50), ("p99", body.p99), ("max", body.max))
        if bound is not None and figures[name] > bound
    ]
    observed = (
        f"{len(durations)} pairs: p50 {_ms(figures['p50'])}, p99 {_ms(figures['p99'])}, "
        f"max {_ms(figures['max'])}" + (f"; {len(unpaired)} unanswered" if unpaired else "")
    )
    if broken:
        worst = max(pairs, key=lambda pair: pair[1].t - pair[0].t)
        return Outcome(
            Verdict.FAILED, expected, f"{observed} ({'; '.join(broken)})", at=worst[1].t,
            evidence=worst, figures=figures,
        )  # fmt: skip
    return Outcome(Verdict.PASSED, expected, observed, at=now, figures=figures)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}ms"
