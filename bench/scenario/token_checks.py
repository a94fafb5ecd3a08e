"""Judging the token expectations against the timeline: pure functions, no I/O.

The token actions record what the broker answered as ``action`` events (CONNACK,
SUBACK and PUBACK reason codes, :mod:`~bench.scenario.token_clients`); what a token
client received is an ``mqtt`` event from source ``token``. Only events of the step count:
an expectation is about the step's own action.
"""

from __future__ import annotations

from bench.scenario.timeline import Event, EventKind
from bench.scenario.token_steps import (
    TOKEN_SOURCE,
    TokenConnectExpect,
    TokenPublishExpect,
    TokenSubscribeExpect,
)
from bench.scenario.windows import Outcome, Verdict, Window, seconds_text

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


def _last_of(window: Window, action: str, client: str, **only: str | None) -> Event | None:
    """The step's last ``action`` of ``client``, with each field of ``only`` as given (if given)."""
    seen = [
        event
        for event in window.upto(window.now)
        if event.kind is EventKind.ACTION
        and event.get("action") == action
        and event.get("client") == client
        and all(wanted in (None, event.get(key)) for key, wanted in only.items())
    ]
    return seen[-1] if seen else None


def _missing(expected: str, action: str, client: str, now: float) -> Outcome:
    return Outcome(Verdict.FAILED, expected, f"no {action} of {client} in this step", at=now)


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


def _answered(
    window: Window,
    expected: str,
    action: str,
    client: str,
    *,
    answer: str,
    wanted: bool,
    **only: str | None,
) -> Outcome:
    """The broker's ``answer`` to the step's last ``action`` of ``client`` was ``wanted``."""
    last = _last_of(window, action, client, **only)
    if last is None:
        return _missing(expected, action, client, window.now)
    return _acked(last.get(answer) is wanted, last, expected, window.start)


def judge_connect(body: TokenConnectExpect, window: Window, context: object = None) -> Outcome:
    """The step's last connect of the client, accepted or refused as expected."""
    expected = describe_connect(body)
    return _answered(
        window, expected, "token_connect", body.client, answer="accepted", wanted=body.accepted
    )


def judge_subscribe(body: TokenSubscribeExpect, window: Window, context: object = None) -> Outcome:
    """The step's last subscribe of the client (to the filter), granted or refused."""
    expected = describe_subscribe(body)
    return _answered(
        window,
        expected,
        "token_subscribe",
        body.client,
        answer="granted",
        wanted=body.granted,
        filter=body.filter,
    )


def judge_publish(body: TokenPublishExpect, window: Window, context: object = None) -> Outcome:
    """The step's last publish of the client: acknowledged or refused, received or not."""
    expected = describe_publish(body)
    sent = _last_of(window, "token_publish", body.client, topic=body.topic)
    if sent is None:
        return _missing(expected, "token_publish", body.client, window.now)
    puback = f"PUBACK {reason_text(sent.get('reason_code'))}"
    if body.to is None:
        outcome = _acked(sent.get("accepted") is body.delivered, sent, expected, window.start)
        return Outcome(outcome.verdict, expected, puback, outcome.at, outcome.latency_s, (sent,))
    if body.delivered and sent.get("accepted") is not True:
        return Outcome(Verdict.FAILED, expected, puback, at=sent.t, evidence=(sent,))
    topic = sent.get("topic")
    end = window.start + body.within
    received = [
        event
        for event in window.upto(end)
        if event.kind is EventKind.MQTT
        and event.source == TOKEN_SOURCE
        and event.get("client") == body.to
        and event.get("topic") == topic
    ]
    if received:
        # Received: what was hoped for, or (at that instant) the failure.
        got = received[0]
        return Outcome(
            Verdict.PASSED if body.delivered else Verdict.FAILED,
            expected,
            f"{puback}; {body.to} got it" + ("" if body.delivered else f" at {got.t:.3f}s"),
            at=got.t,
            latency_s=max(0.0, got.t - window.start) if body.delivered else None,
            evidence=(sent, got),
        )
    if window.now < end:
        return Outcome(Verdict.PENDING, expected)
    if body.delivered:
        return Outcome(
            Verdict.FAILED, expected, f"{puback}; {body.to} got nothing on {topic}", at=end
        )
    return Outcome(
        Verdict.PASSED, expected, f"{puback}; {body.to} got nothing", at=end, evidence=(sent,)
    )
