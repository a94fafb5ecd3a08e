"""Latency expectations: pair timeline events and bound the time between them."""

from __future__ import annotations

from collections.abc import Iterable

from bench.load.summary import percentile_of
from bench.scenario.checks import EventMatch, LatencyExpect
from bench.scenario.timeline import Event, EventKind
from bench.scenario.windows import Outcome, Verdict, seconds_text


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


def latency_outcome(
    body: LatencyExpect, events: Iterable[Event], now: float, expected: str
) -> Outcome:
    """Pair ``events`` (the window the expectation looks at) and check the bounds."""
    pairs, unpaired = pair_events(body, events)
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
        f"{name} {seconds_text(figures[name])} > {seconds_text(bound)}"
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
