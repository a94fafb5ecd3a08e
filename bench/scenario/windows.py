"""Time windows over a timeline: the pure rules every expectation is decided by.

An expectation is PASSED, FAILED, or PENDING while its bound has not run out. Three shapes
cover every kind: something happens ``count`` times within a bound (:func:`within`),
nothing matching happens during a window (:func:`never`), and a state is reached within a
bound and, if asked, held (:func:`state_in_window`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from bench.scenario.timeline import Event, Timeline


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
class Window:
    """Where an expectation is judged: a timeline, the start of its step, and the present."""

    timeline: Timeline
    start: float
    now: float

    def upto(self, end: float) -> list[Event]:
        """The events from the step's start until ``end`` or the present, the earlier."""
        return self.timeline.between(self.start, min(self.now, end))


def seconds_text(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:g}s"


def observed_text(events: Sequence[Event], noun: str, limit: int = 5) -> str:
    if not events:
        return f"no {noun} at all"
    shown = "; ".join(f"{e.summary()} at {e.t:.3f}s" for e in events[:limit])
    more = f" (+{len(events) - limit} more)" if len(events) > limit else ""
    return f"{len(events)} other {noun}(s): {shown}{more}"


def within(
    window: Window,
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
    timeline, start, now = window.timeline, window.start, window.now
    end = start + bound
    seen = timeline.between(since if since is not None else start, min(now, end))
    hits = [event for event in seen if matches(event)]
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
    others = [event for event in seen if related(event) and not matches(event)]
    matching = f"{len(hits)} matching, " if hits else ""
    return Outcome(
        Verdict.FAILED,
        expected,
        matching + observed_text(others, noun),
        at=end,
        evidence=tuple(hits + others),
    )


def never(
    window: Window, *, window_s: float, matches: Callable[[Event], bool], expected: str
) -> Outcome:
    """Pass when nothing matching happened in ``[start, start + window_s]``."""
    end = window.start + window_s
    hits = [event for event in window.upto(end) if matches(event)]
    if hits:
        first = hits[0]
        return Outcome(
            Verdict.FAILED,
            expected,
            f"{first.summary()} at {first.t:.3f}s",
            at=first.t,
            latency_s=first.t - window.start,
            evidence=tuple(hits),
        )
    if window.now < end:
        return Outcome(Verdict.PENDING, expected)
    return Outcome(Verdict.PASSED, expected, "nothing", at=end)


def state_in_window(
    window: Window,
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
    start = window.start
    end = start + bound
    current = [event for event in window.timeline.before(start) if is_subject(event)]
    candidates = current[-1:] + [event for event in window.upto(end) if is_subject(event)]
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
            return held_from(window, event, at, hold, is_subject, satisfied, expected)
    if window.now < end:
        return Outcome(Verdict.PENDING, expected)
    if not candidates:
        observed = "never observed"
    else:
        observed = "; ".join(f"{e.summary()} at {e.t:.3f}s" for e in candidates[-5:])
    return Outcome(Verdict.FAILED, expected, observed, at=end, evidence=tuple(candidates[-5:]))


def held_from(  # noqa: PLR0917 - the state of one evaluation, passed on
    window: Window,
    reached: Event,
    at: float,
    hold: float,
    is_subject: Callable[[Event], bool],
    satisfied: Callable[[Event], bool],
    expected: str,
) -> Outcome:
    """The state was reached by ``reached`` at ``at``: did it last ``hold`` seconds?"""
    until = at + hold
    for event in window.timeline.between(at, min(window.now, until)):
        if event is reached or not is_subject(event) or satisfied(event):
            continue
        return Outcome(
            Verdict.FAILED,
            expected,
            f"{reached.summary()} at {reached.t:.3f}s, then {event.summary()} at "
            f"{event.t:.3f}s (held {seconds_text(event.t - at)} of {seconds_text(hold)})",
            at=event.t,
            evidence=(reached, event),
        )
    if window.now < until:
        return Outcome(Verdict.PENDING, expected)
    return Outcome(
        Verdict.PASSED,
        expected,
        f"{reached.summary()}, held {seconds_text(hold)}",
        at=until,
        latency_s=at - window.start,
        evidence=(reached,),
    )
