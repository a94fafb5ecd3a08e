"""The inspection seam: every ingress message passes a chain of stages before the stream.

Issue 14's pipeline (pattern matching, anomaly detection, auth verification, aggregation)
plugs in here as :class:`Stage` implementations; until then the chain is
:class:`PassThrough`, which delivers everything. A stage is pure (time comes in the
message), so it is tested without servers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class Action(StrEnum):
    """What happens to a message (issue 14: deliver, deliver-and-flag, quarantine)."""

    DELIVER = "deliver"
    FLAG = "flag"
    QUARANTINE = "quarantine"

    @property
    def delivers(self) -> bool:
        """True when the client receives the message."""
        return self is not Action.QUARANTINE


@dataclass(frozen=True)
class InboundMessage:
    """One alert on its way from the origin to a client."""

    client_id: str
    subject: str
    payload: bytes
    headers: Mapping[str, str]
    received_at: float  # unix seconds, set by the transport
    message_id: str  # the stream's ``Nats-Msg-Id``: stable when the bridge resends


@dataclass(frozen=True)
class Finding:
    """Something a stage noticed (rule name, severity, free-form detail)."""

    stage: str
    rule: str
    severity: str = "low"
    detail: str = ""


@dataclass(frozen=True)
class Verdict:
    """A stage's (or the chain's) answer."""

    action: Action = Action.DELIVER
    findings: tuple[Finding, ...] = field(default=())


DELIVER = Verdict()


class Stage(Protocol):
    """One inspection step: pure, deterministic, no I/O."""

    name: str

    def inspect(self, message: InboundMessage) -> Verdict:
        """The stage's verdict on ``message``."""
        ...


class PassThrough:
    """Delivers everything (the default until issue 14's stages exist)."""

    name = "pass_through"

    def inspect(self, message: InboundMessage) -> Verdict:
        """Always deliver."""
        return DELIVER


def run_stages(stages: Sequence[Stage], message: InboundMessage) -> Verdict:
    """Run ``stages`` in order; quarantine stops the chain, findings accumulate.

    The strongest action wins (quarantine > flag > deliver).
    """
    action = Action.DELIVER
    findings: list[Finding] = []
    for stage in stages:
        verdict = stage.inspect(message)
        findings.extend(verdict.findings)
        if verdict.action is Action.QUARANTINE:
            return Verdict(Action.QUARANTINE, tuple(findings))
        if verdict.action is Action.FLAG:
            action = Action.FLAG
    return Verdict(action, tuple(findings))
