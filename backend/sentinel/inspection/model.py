"""The inspection pipeline's vocabulary: messages in, findings and verdicts out.

Everything here is a frozen value; the stages (``patterns``, ``anomaly``, ``auth``) and the
``aggregator`` are pure and take the time as an argument, so a test (or a replay of a
captured stream) decides exactly what "now" is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from backend.contract import Severity


class Stage(StrEnum):
    """The seed 003 pipeline's stages, in the order a message meets them."""

    PATTERN = "pattern"
    ANOMALY = "anomaly"
    AUTH = "auth"


class Action(StrEnum):
    """What a matching rule does to the message: let it through marked, or stop it."""

    FLAG = "flag"
    BLOCK = "block"


class Verdict(StrEnum):
    """The pipeline's decision for one message."""

    DELIVER = "deliver"
    FLAG = "deliver_and_flag"
    QUARANTINE = "quarantine"


SEVERITY_RANK: dict[Severity, int] = {s: i for i, s in enumerate(Severity)}


@dataclass(frozen=True, slots=True)
class AlertMessage:
    """One message from the customer origin, addressed to one Sentinel client.

    ``client_id`` is the addressee (``clients/<id>/alerts``); ``publisher`` is who sent it
    into the origin broker (its certificate identity), ``received_at_s`` the worker's clock.
    """

    client_id: str
    topic: str
    payload: bytes
    publisher: str
    received_at_s: float


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule that matched: which stage, which rule, how bad, and what it does."""

    stage: Stage
    rule: str
    severity: Severity
    action: Action
    detail: str
    client_id: str


@dataclass(frozen=True, slots=True)
class Inspection:
    """The verdict for one message and the findings that led to it (empty: clean)."""

    verdict: Verdict
    findings: tuple[Finding, ...] = ()

    @staticmethod
    def of(findings: list[Finding]) -> Inspection:
        """Block wins over flag; no finding delivers the message untouched."""
        if not findings:
            return CLEAN
        if any(f.action is Action.BLOCK for f in findings):
            return Inspection(Verdict.QUARANTINE, tuple(findings))
        return Inspection(Verdict.FLAG, tuple(findings))


CLEAN = Inspection(Verdict.DELIVER)


@dataclass(frozen=True, slots=True)
class AuthEvent:
    """One auth-callout decision, as the callout service audits it."""

    client_id: str
    source: str
    region: str
    allowed: bool
    reason: str
    at_s: float


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """Findings of one rule for one client within one aggregation window.

    ``count`` grows while the window is open; the aggregator emits the event when the
    window opens (so an operator hears of it at once) and again when it closes with more
    than one finding, carrying the final count.
    """

    stage: Stage
    rule: str
    client_id: str
    severity: Severity
    first_at_s: float
    last_at_s: float
    count: int
    detail: str
    closed: bool = False
    samples: tuple[str, ...] = field(default=())
