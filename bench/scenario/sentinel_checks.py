"""Sentinel expectations decided against the timeline, and their wording (pure, no I/O).

Registered on :func:`bench.scenario.expectations.judge` and
:func:`bench.scenario.wording.describe` when :mod:`bench.scenario.expectations` is imported.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.scenario.expectations import Context, absent, judge, occurs, severity_ok
from bench.scenario.sentinel_steps import (
    AuthExpect,
    DeliveredExpect,
    NotDeliveredExpect,
    SecurityEventExpect,
)
from bench.scenario.timeline import Event, EventKind
from bench.scenario.windows import Outcome, Verdict, Window
from bench.scenario.windows import seconds_text as _s
from bench.scenario.wording import describe


def _security_matches(body: SecurityEventExpect) -> Callable[[Event], bool]:
    def matches(event: Event) -> bool:
        if event.kind is not EventKind.SECURITY:
            return False
        for key, wanted in (("stage", body.stage), ("rule", body.rule), ("client", body.client)):
            if wanted is not None and event.get(key) != wanted:
                return False
        if body.closed is not None and bool(event.get("closed")) != body.closed:
            return False
        return severity_ok(event, body.severity, body.min_severity)

    return matches


@judge.register
def _security_event(body: SecurityEventExpect, window: Window, context: Context) -> Outcome:
    matches = _security_matches(body)
    security = EventKind.SECURITY
    outcome = occurs(body, window, matches, lambda e: e.kind is security, "security event")
    if body.at_most is None or outcome.verdict is Verdict.FAILED:
        return outcome
    # "Not hundreds": watch the whole window, then count.
    end = window.start + body.within
    hits = [e for e in window.upto(end) if matches(e)]
    if len(hits) > body.at_most:
        return Outcome(
            Verdict.FAILED,
            outcome.expected,
            f"{len(hits)} matching: "
            + "; ".join(f"{e.summary()} at {e.t:.3f}s" for e in hits[:5])
            + (f" (+{len(hits) - 5} more)" if len(hits) > 5 else ""),
            at=hits[body.at_most].t,
            evidence=tuple(hits),
        )
    if window.now < end:
        return Outcome(Verdict.PENDING, outcome.expected)
    return outcome


def _delivery_matches(body: DeliveredExpect | NotDeliveredExpect) -> Callable[[Event], bool]:
    topic = body.topic or f"clients/{body.client}/alerts"

    def matches(event: Event) -> bool:
        return (
            _for_client(EventKind.DELIVERY, body.client)(event)
            and event.get("topic") == topic
            and (body.contains is None or body.contains in str(event.get("body", "")))
        )

    return matches


def _for_client(kind: EventKind, client: str) -> Callable[[Event], bool]:
    return lambda event: event.kind is kind and event.get("client") == client


@judge.register
def _delivered(body: DeliveredExpect, window: Window, context: Context) -> Outcome:
    related = _for_client(EventKind.DELIVERY, body.client)
    return occurs(body, window, _delivery_matches(body), related, "delivery")


@judge.register
def _not_delivered(body: NotDeliveredExpect, window: Window, context: Context) -> Outcome:
    return absent(body, window, _delivery_matches(body))


@judge.register
def _auth(body: AuthExpect, window: Window, context: Context) -> Outcome:
    related = _for_client(EventKind.AUTH, body.client)

    def matches(event: Event) -> bool:
        return (
            related(event)
            and event.get("result") == body.result
            and (body.reason is None or event.get("reason") == body.reason)
        )

    return occurs(body, window, matches, related, "auth decision")


# ---------------------------------------------------------------- wording


def _n(count: int, noun: str) -> str:
    if count != 1:
        return f"{count} x {noun}"
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


@describe.register
def _(body: SecurityEventExpect) -> str:
    parts = [
        f"{key}={value}"
        for key, value in (
            ("stage", body.stage),
            ("rule", body.rule),
            ("client", body.client),
            ("severity", body.severity.value if body.severity else None),
            ("min_severity", body.min_severity.value if body.min_severity else None),
            ("closed", body.closed),
        )
        if value is not None
    ]
    most = f" (at most {body.at_most})" if body.at_most is not None else ""
    return f"{_n(body.count, 'security event')} {' '.join(parts)}{most} within {_s(body.within)}"


@describe.register
def _(body: DeliveredExpect) -> str:
    what = f" containing {body.contains!r}" if body.contains else ""
    topic = f" on {body.topic}" if body.topic else ""
    n = _n(body.count, "alert")
    return f"{n}{what} delivered to {body.client}{topic} within {_s(body.within)}"


@describe.register
def _(body: NotDeliveredExpect) -> str:
    what = f" containing {body.contains!r}" if body.contains else ""
    topic = f" on {body.topic}" if body.topic else ""
    return f"no alert{what} delivered to {body.client}{topic} for {_s(body.for_)}"


@describe.register
def _(body: AuthExpect) -> str:
    reason = f" ({body.reason})" if body.reason else ""
    n = _n(body.count, f"auth decision {body.result}{reason}")
    return f"{n} for client {body.client} within {_s(body.within)}"
