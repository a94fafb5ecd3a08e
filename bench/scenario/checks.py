"""What a step can expect: one model per expectation, keyed in the file by its name.

Bounds are counted in the bench's clock from the moment the step's action started:
``within`` is how long the expected thing may take; ``for`` how long something must not
happen (``no_alert``, ``no_command``) or, on a state (``lock``, ``device``, ``link``), how
long the state must hold once reached. Evaluated by :mod:`bench.scenario.expectations`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from backend.contract import CommandVerb, MessageKind, Severity
from backend.federation.links import LinkStatus
from backend.store.models import AttestationStatus, TrustStatus
from bench.scenario.fields import DeviceId, Duration, SiteId, Strict
from bench.scenario.sentinel_steps import SENTINEL_CHECKS, SentinelCheck
from bench.scenario.token_steps import TOKEN_CHECKS, TokenCheck
from simulators.lock import LockState


class Scope(StrEnum):
    """Which events count: those since this step's action, or since the scenario began."""

    STEP = "step"
    SCENARIO = "scenario"


#: ``for`` on a state: once reached, the state must last this long without a change.
Hold = Annotated[
    Duration | None,
    Field(alias="for", description="once reached, the state must hold this long"),
]


class AlertFilter(Strict):
    """Which alerts count: ``alert`` and ``no_alert`` filter on the same fields."""

    type: str | None = None
    severity: Severity | None = None
    min_severity: Severity | None = None
    device: DeviceId | None = None
    site: SiteId | None = None
    origin: SiteId | None = Field(None, description="origin site of a federated alert")
    contains: str | None = Field(None, description="text in the alert's title or description")


class AlertExpect(AlertFilter):
    """An alert seen at ``site`` (Redis stream or alert queue) within ``within``."""

    data: dict[str, Any] = Field(
        default_factory=dict,
        description="fields of the alert stream entry, each equal to this value "
        "(e.g. payload: the device's message, verbatim)",
    )
    within: Duration = 5.0
    count: Annotated[int, Field(ge=1)] = 1
    scope: Scope = Field(
        Scope.STEP, description="count events since this step's action, or since the start"
    )


class NoAlertExpect(AlertFilter):
    """No alert matching the filter during ``for`` after the step's action."""

    for_: Duration = Field(1.0, alias="for")


class DeviceExpect(Strict):
    """A device's state at a site (``GET /api/v1/cps/devices``) within ``within``."""

    device: DeviceId
    site: SiteId | None = None
    registered: bool = True
    trust: TrustStatus | None = None
    attestation: AttestationStatus | None = None
    risk_min: float | None = None
    risk_max: float | None = None
    firmware_version: str | None = None
    seen_since_step: bool = Field(
        False,
        description="its last_seen moved forward after the step began (a status refreshed it)",
    )
    within: Duration = 5.0
    for_: Hold = None


class CommandExpect(Strict):
    """A command received by the device (its downlink) within ``within``."""

    device: DeviceId
    verb: CommandVerb
    within: Duration = 2.0
    count: Annotated[int, Field(ge=1)] = 1


class NoCommandExpect(Strict):
    """No command (of ``verb``, if given) reaches the device during ``for``."""

    device: DeviceId
    verb: CommandVerb | None = None
    for_: Duration = Field(1.0, alias="for")


class LockExpect(Strict):
    """A simulated door's lock state within ``within`` (and, with ``for``, held that long)."""

    device: DeviceId
    state: LockState
    within: Duration = 2.0
    for_: Hold = None


class AuditExpect(Strict):
    """An ``aurora:audit`` entry of ``type`` (fields in ``data`` compared) within ``within``."""

    type: str
    site: SiteId | None = None
    device: DeviceId | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    within: Duration = 5.0
    count: Annotated[int, Field(ge=1)] = 1
    scope: Scope = Field(
        Scope.STEP, description="count events since this step's action, or since the start"
    )


class LinkExpect(Strict):
    """The federation link as ``site`` sees it (``GET /api/v1/sites``) within ``within``."""

    site: SiteId
    peer: SiteId
    status: LinkStatus
    within: Duration = 10.0
    for_: Hold = None


class MetricExpect(Strict):
    """A counter of a site grew by ``increase`` within ``within``.

    ``name`` is a Prometheus sample name of ``/metrics``
    (``aurora_ingest_rejected_messages_total``; samples whose labels include ``labels`` are
    summed), or ``federation_<counter>`` for a counter of the federation health in
    ``/api/v1/system/topology`` (``federation_duplicates``, ``federation_echoes_dropped``).
    """

    name: str = Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
    labels: dict[str, str] = Field(default_factory=dict)
    site: SiteId | None = None
    increase: float = Field(1.0, gt=0)
    within: Duration = 3.0


class EventMatch(Strict):
    """Which timeline events one end of a latency pair is."""

    event: Literal["badge", "command", "alert", "audit", "mqtt", "lock", "action"]
    device: DeviceId | None = None
    verb: CommandVerb | None = None
    type: str | None = None
    site: SiteId | None = None
    message: MessageKind | None = None
    state: LockState | None = None
    source: Literal["node", "mqtt", "redis", "api", "runner"] | None = Field(
        None, description="only events from this source (a command: node = received)"
    )


class LatencyExpect(Strict):
    """A bound on the time between paired events over the scenario so far.

    Each ``from`` event is paired with the first later ``to`` event of the same device
    (``pair_by: device``) or, with ``pair_by: order``, the next ``to`` event at all.
    """

    from_: EventMatch = Field(alias="from")
    to: EventMatch
    pair_by: Literal["device", "order", "alert_id"] = "device"
    p50: Duration | None = None
    p99: Duration | None = None
    max: Duration | None = None
    min_pairs: Annotated[int, Field(ge=1)] = 1
    scope: Scope = Field(
        Scope.SCENARIO, description="pair events of the whole scenario so far, or of this step"
    )

    @model_validator(mode="after")
    def _some_bound(self) -> LatencyExpect:
        if self.p50 is None and self.p99 is None and self.max is None:
            raise ValueError("give at least one bound: p50, p99 or max")
        return self


#: Every expectation, by the key that names it in a step's ``expect`` list.
CHECKS: dict[str, type[Strict]] = {
    "alert": AlertExpect,
    "no_alert": NoAlertExpect,
    "device": DeviceExpect,
    "command": CommandExpect,
    "no_command": NoCommandExpect,
    "lock": LockExpect,
    "audit": AuditExpect,
    "link": LinkExpect,
    "metric": MetricExpect,
    "latency": LatencyExpect,
    **SENTINEL_CHECKS,
    **TOKEN_CHECKS,
}

Check = (
    AlertExpect
    | NoAlertExpect
    | DeviceExpect
    | CommandExpect
    | NoCommandExpect
    | LockExpect
    | AuditExpect
    | LinkExpect
    | MetricExpect
    | LatencyExpect
    | SentinelCheck
    | TokenCheck
)
