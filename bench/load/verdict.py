"""Whether a load run measured anything at all: the run checks.

A load run must never pass vacuously. Targets (``--assert``) judge what was measured; the
checks here judge whether the measurement happened: every planned device connected, at
least one message was sent and found ingested, the broker neither dropped a connection nor
refused a publish, and no worker process died or hit a fatal error. Each failed check names
the first errors by cause and reason (:mod:`bench.load.problems`). Pure: no locust, no clocks.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.load.problems import Problem
from bench.load.summary import LoadCounters


@dataclass(frozen=True, slots=True)
class RunCheck:
    """One check of the run itself; failed checks fail the run like a missed target."""

    name: str
    passed: bool
    message: str


def _first(problems: list[Problem], *causes: str) -> str:
    rows = [row.render() for row in problems if row.cause in causes]
    return "; ".join(rows[:3]) if rows else ""


def judge(planned_devices: int, counters: LoadCounters, problems: list[Problem]) -> list[RunCheck]:
    """The run checks: devices connected, messages sent and ingested, no broker errors, no
    worker lost.

    ``planned_devices`` is what the run asked for (``--devices``, locust's ``--users``).
    """
    connected = counters.connected
    why_not = _first(problems, "connect", "disconnect", "worker", "redis")
    missing = planned_devices - connected
    never_started = max(0, planned_devices - counters.devices)
    connect_message = f"{connected}/{planned_devices} devices connected"
    if missing > 0:
        if never_started:
            connect_message += f" ({never_started} never started before the run ended)"
        connect_message += f": {why_not}" if why_not else ""
    checks = [
        RunCheck("devices connected", connected > 0 and missing <= 0, connect_message),
    ]
    sent_message = f"{counters.sent} messages sent"
    if counters.sent == 0:
        why = "no device connected" if connected == 0 else _first(problems, "publish")
        sent_message += f": {why}" if why else " (no device got to publish)"
    checks.append(RunCheck("messages sent", counters.sent > 0, sent_message))
    ingested_ok = counters.sent == 0 or counters.ingested > 0
    ingested_message = f"{counters.ingested} of {counters.sent} messages found ingested"
    if not ingested_ok:
        why = _first(problems, "redis")
        ingested_message += f": {why}" if why else " (is the backend running?)"
    checks.append(RunCheck("messages ingested", ingested_ok, ingested_message))
    broker = [row.render() for row in problems if row.cause in ("disconnect", "publish")]
    checks.append(
        RunCheck(
            "no broker errors",
            not broker,
            "; ".join(broker[:3]) if broker else "no connection dropped, no publish refused",
        )
    )
    # A worker that died, or a watcher that could not read the streams for a while: what
    # was measured is incomplete, whatever the numbers say.
    fatal = [row for row in problems if row.fatal or row.cause in ("worker", "redis", "setup")]
    checks.append(
        RunCheck(
            "workers healthy",
            not fatal,
            "; ".join(row.render() for row in fatal) if fatal else "no worker died or failed",
        )
    )
    return checks
