"""Judging the token expectations against the timeline: pure functions, no I/O.

The token actions record what the broker answered as ``action`` events (CONNACK,
SUBACK and PUBACK reason codes, :mod:`~bench.scenario.token_clients`); what a token
client received is an ``mqtt`` event from source ``token``. Only events of the step count:
an expectation is about the step's own action.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.scenario.timeline import Event, EventKind, Timeline
from bench.scenario.token_steps import (
    TOKEN_SOURCE,
    TokenConnectExpect,
    TokenPublishExpect,
    TokenSubscribeExpect,
)
from bench.scenario.windows import Outcome, Verdict, seconds_text

#: MQTT 5 reason codes a token client may get, in words (failures say what it was).
REASONS = {
    0: "success",
    1: "granted QoS 1",
    2: "granted QoS 2",
    16: "no matching subscribers",
    128: "unspecified error",
    134: "bad user name or password",
    135: "not authorized",
    143: "topic filter invalid",
}


def reason_text(code: object) -> str:
    """``135 (not authorized)``."""
    name = REASONS.get(code) if isinstance(code, int) else None
    return f"{code} ({name})" if name else str(code)


def describe_connect(body: TokenConnectExpect) -> str:
    """The expectation in words."""
    return f"token client {body.client} {'accepted' if body.accepted else 'refused'} at connect"


def describe_subscribe(body: TokenSubscribeExpect) -> str:
    """The expectation in words."""
    what = f" to {body.filter}" if body.filter else ""
    return f"subscription of {body.client}{what} {'granted' if body.granted else 'refused'}"


def describe_publish(body: TokenPublishExpect) -> str:
    """The expectation in words."""
    what = f" on {body.topic}" if body.topic else ""
    if body.to is None:
        verdict = "acknowledged" if body.delivered else "refused by the broker"
        return f"publish of {body.client}{what} {verdict}"
    verdict = "delivered to" if body.delivered else "not delivered to"
    return f"publish of {body.client}{what} {verdict} {body.to} within {seconds_text(body.within)}"


def _actions(
    timeline: Timeline, start: float, now: float, action: str, picks: Callable[[Event], bool]
) -> list[Event]:
    return [
        event
        for event in timeline.between(start, now)
        if event.kind is EventKind.ACTION and event.get("action") == action and picks(event)
    ]


def _missing(expected: str, what: str, now: float) -> Outcome:
    return Outcome(Verdict.FAILED, expected, f"no {what} in this step", at=now)


def _acked(ok: bool, event: Event, expected: str, start: float) -> Outcome:
    observed = f"reason code {reason_text(event.get('reason_code'))}"
    return Outcome(
        Verdict.PASSED if ok else Verdict.FAILED,
        expected,
        observed,
        at=max(event.t, start),
        latency_s=max(0.0, event.t - start) if ok else None,
        evidence=(event,),
    )


def evaluate_connect(
    body: TokenConnectExpect, timeline: Timeline, start: float, now: float, context: object = None
) -> Outcome:
    """The step's last connect of the client, accepted or refused as expected."""
    expected = describe_connect(body)
    seen = _actions(timeline, start, now, "token_connect", lambda e: e.get("client") == body.client)
    if not seen:
        return _missing(expected, f"token_connect of {body.client}", now)
    last = seen[-1]
    return _acked(last.get("accepted") is body.accepted, last, expected, start)


def evaluate_subscribe(
    body: TokenSubscribeExpect, timeline: Timeline, start: float, now: float, context: object = None
) -> Outcome:
    """The step's last subscribe of the client (to the filter), granted or refused."""
    expected = describe_subscribe(body)

    def picks(event: Event) -> bool:
        return event.get("client") == body.client and body.filter in (None, event.get("filter"))

    seen = _actions(timeline, start, now, "token_subscribe", picks)
    if not seen:
        return _missing(expected, f"token_subscribe of {body.client}", now)
    last = seen[-1]
    return _acked(last.get("granted") is body.granted, last, expected, start)


def evaluate_publish(
    body: TokenPublishExpect, timeline: Timeline, start: float, now: float, context: object = None
) -> Outcome:
    """The step's last publish of the client: acknowledged or refused, received or not."""
    expected = describe_publish(body)

    def picks(event: Event) -> bool:
        return event.get("client") == body.client and body.topic in (None, event.get("topic"))

    seen = _actions(timeline, start, now, "token_publish", picks)
    if not seen:
        return _missing(expected, f"token_publish of {body.client}", now)
    sent = seen[-1]
    puback = f"PUBACK {reason_text(sent.get('reason_code'))}"
    if body.to is None:
        outcome = _acked(sent.get("accepted") is body.delivered, sent, expected, start)
        return Outcome(outcome.verdict, expected, puback, outcome.at, outcome.latency_s, (sent,))
    topic = sent.get("topic")
    end = start + body.within
    received = [
        event
        for event in timeline.between(start, min(now, end))
        if event.kind is EventKind.MQTT
        and event.source == TOKEN_SOURCE
        and event.get("client") == body.to
        and event.get("topic") == topic
    ]
    if body.delivered:
        if sent.get("accepted") is not True:
            return Outcome(Verdict.FAILED, expected, puback, at=sent.t, evidence=(sent,))
        if received:
            got = received[0]
            return Outcome(
                Verdict.PASSED,
                expected,
                f"{puback}; {body.to} got it",
                at=got.t,
                latency_s=max(0.0, got.t - start),
                evidence=(sent, got),
            )
        if now < end:
            return Outcome(Verdict.PENDING, expected)
        return Outcome(
            Verdict.FAILED, expected, f"{puback}; {body.to} got nothing on {topic}", at=end
        )
    if received:
        got = received[0]
        return Outcome(
            Verdict.FAILED,
            expected,
            f"{puback}; {body.to} got it at {got.t:.3f}s",
            at=got.t,
            evidence=(sent, got),
        )
    if now < end:
        return Outcome(Verdict.PENDING, expected)
    return Outcome(
        Verdict.PASSED, expected, f"{puback}; {body.to} got nothing", at=end, evidence=(sent,)
    )
