"""The scenario file format: pydantic models, strict (unknown keys are refused).

A scenario says which sites exist (with backend setting overrides so timings shrink), which
devices run there, which badges open which doors, and a list of steps. Each step does at
most one action and then checks its expectations, each with a time bound counted in the
bench's clock from the moment the step's action started::

    name: badge swipes
    sites:
      a: {settings: {unlock_duration_s: 1}}
    fleet:
      - {id: door-01, board: stm32f401-door}
    grants:
      - {uid: 0455AF21, doors: [door-01]}
    steps:
      - name: a granted badge opens the door
        swipe: {device: door-01, uid: 0455AF21}
        expect:
          - command: {device: door-01, verb: unlock, within: 2s}
          - lock: {device: door-01, state: unlocked, within: 2s}

``aurora-bench scenario schema`` prints the JSON Schema of :class:`Scenario`.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from backend.contract import CommandVerb, MessageKind, Severity
from backend.settings import Settings

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds from ``1.5``, ``"1.5s"``, ``"500ms"`` or ``"2m"``; negative values refused."""
    if isinstance(value, bool):
        raise ValueError(  # noqa: TRY004 - pydantic reports only ValueError as a field error
            "a duration is a number of seconds or a string like '500ms', '2s'"
        )
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a duration; write e.g. 2, '2s', '500ms' or '1m'")
        seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    else:
        raise ValueError(  # noqa: TRY004 - pydantic reports only ValueError as a field error
            "a duration is a number of seconds or a string like '500ms', '2s'"
        )
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


#: Seconds; YAML may say ``2``, ``"2s"``, ``"500ms"`` or ``"1m"``.
Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m)?\s*$"},
            ],
            "description": "seconds, or a string like '500ms', '2s', '1m'",
        }
    ),
]
DeviceId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
SiteId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
BadgeUid = Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{8,20}$")]

#: Board models of the simulated fleet (issue 3), by the names fleet specs use.
BoardKind = Literal["esp32s3-env", "stm32f401-access", "stm32f401-door", "nrf52840-sentinel"]
#: Faults a simulated node can be told to perform (issue 3).
FaultKind = Literal[
    "firmware_drift",
    "sensor_failure",
    "offline",
    "online",
    "clock_skew",
    "malformed_payload",
    "impersonate",
    "replay_attestation",
    "c2_beacon",
]
Service = Literal["backend", "mosquitto", "nats", "redis"]
LockState = Literal["locked", "unlocked", "lockdown"]
TrustStatus = Literal["unknown", "trusted", "drift_detected"]
AttestationStatus = Literal["verified", "failed", "expired"]
LinkStatus = Literal["healthy", "degraded", "down"]

#: Settings the bench owns for every site (ports, URLs, certificates): a scenario may not
#: override them, or the backend would talk to the wrong servers.
RESERVED_SETTINGS = frozenset(
    {
        "site_id",
        "api_host",
        "api_port",
        "database_url",
        "redis_url",
        "mqtt_host",
        "mqtt_port",
        "mqtt_tls",
        "mqtt_ca",
        "mqtt_cert",
        "mqtt_key",
        "mqtt_client_id",
        "nats_url",
    }
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- sites, fleet, grants


class SiteSpec(_Strict):
    """One site and the backend settings it overrides (``AURORA_*``, see backend.settings)."""

    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="backend setting overrides, e.g. {unlock_duration_s: 1}",
    )

    def problems(self) -> dict[str, str]:
        """Overrides the backend does not know or the bench owns: key -> what is wrong.

        Checked by the loader (which knows the line of each key), not by a validator.
        """
        known = set(Settings.model_fields) - RESERVED_SETTINGS
        problems = {}
        for key in self.settings:
            if key in RESERVED_SETTINGS:
                problems[key] = f"setting {key!r} is owned by the bench and cannot be overridden"
            elif key not in known:
                problems[key] = (
                    f"unknown backend setting {key!r}; known: {', '.join(sorted(known))}"
                )
        return problems

    def env(self) -> dict[str, str]:
        """The overrides as ``AURORA_*`` environment variables (dicts and lists as JSON)."""
        env: dict[str, str] = {}
        for key, value in sorted(self.settings.items()):
            if isinstance(value, dict | list):
                text = json.dumps(value)
            elif isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = str(value)
            env[f"AURORA_{key.upper()}"] = text
        return env


class NodeSpec(_Strict):
    """A simulated device, or a real board when ``port`` names its serial port."""

    id: DeviceId
    board: BoardKind
    site: SiteId | None = Field(None, description="default: the first site")
    firmware_version: str | None = None
    port: str | None = Field(
        None, description="serial port of a real board (e.g. /dev/ttyACM0) instead of a model"
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="model parameters passed to the simulator"
    )


class GrantSpec(_Strict):
    """Which badge UID opens which doors (``["*"]`` = every door) at a site."""

    uid: BadgeUid
    doors: list[str] = Field(min_length=1)
    site: SiteId | None = None


# ---------------------------------------------------------------- actions


class SwipeAction(_Strict):
    """Present a badge at a reader/door; ``count`` swipes ``interval`` apart."""

    device: DeviceId
    uid: BadgeUid
    count: Annotated[int, Field(ge=1, le=10_000)] = 1
    interval: Duration = 0.0


class DriftAction(_Strict):
    """Change the node's flash image: its next status reports a new firmware hash."""

    device: DeviceId


class AttestAction(_Strict):
    """Ask the backend to challenge a device (``POST .../attestations``).

    ``respond`` makes a simulated node answer honestly, with a flash image that changed
    since its last status (``tampered``: the hash no longer matches the baseline), signed
    under an expired certificate (``expired_cert``), by replaying its previous response
    (``replay``), or not at all (``silent``: its clock is skewed so the challenge looks
    expired to it).
    """

    device: DeviceId
    respond: Literal["honest", "tampered", "expired_cert", "replay", "silent"] = "honest"


class RaiseAlertAction(_Strict):
    """Create an alert at a site through ``POST /api/v1/alerts`` (e.g. a C2 detection)."""

    site: SiteId | None = None
    type: str = "c2_beacon"
    severity: Severity = Severity.CRITICAL
    title: str = "C2 beacon detected"
    device: DeviceId | None = None
    iocs: list[Any] = Field(default_factory=list)
    count: Annotated[int, Field(ge=1, le=10_000)] = 1


class PublishAction(_Strict):
    """Publish raw bytes on a topic as a device (or as the probe identity), even malformed.

    Give the payload as ``payload`` (text sent verbatim), ``json`` (any YAML value encoded
    as JSON), or ``hex`` (bytes). ``size`` pads ``payload`` to that many bytes (oversize
    tests).
    """

    topic: str
    site: SiteId | None = None
    payload: str | None = None
    json_: Any = Field(None, alias="json")
    hex: str | None = Field(None, pattern=r"^([0-9a-fA-F]{2})*$")
    size: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    qos: Literal[0, 1] = 1
    as_device: DeviceId | None = Field(None, description="publish with this device's cert")
    count: Annotated[int, Field(ge=1, le=100_000)] = 1

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_body(self) -> PublishAction:
        given = [
            name
            for name, value in (("payload", self.payload), ("json", self.json_), ("hex", self.hex))
            if value is not None
        ]
        if len(given) > 1:
            raise ValueError(f"give one of payload, json, hex (got {', '.join(given)})")
        return self

    def body(self) -> bytes:
        """The bytes to publish."""
        if self.hex is not None:
            data = bytes.fromhex(self.hex)
        elif self.json_ is not None:
            data = json.dumps(self.json_, separators=(",", ":")).encode()
        else:
            data = (self.payload or "").encode()
        if self.size is not None and len(data) < self.size:
            data += b" " * (self.size - len(data))
        return data


class FaultAction(_Strict):
    """Tell a simulated node to misbehave (faults of the simulated-nodes issue)."""

    device: DeviceId
    kind: FaultKind
    params: dict[str, Any] = Field(default_factory=dict)


class OperatorCommandAction(_Strict):
    """An operator lock verb through ``POST /api/v1/cps/devices/{id}/commands``."""

    device: DeviceId
    verb: CommandVerb
    site: SiteId | None = None


class RevokeAction(_Strict):
    """Revoke every grant of ``uid`` at a site."""

    uid: BadgeUid
    site: SiteId | None = None


class ServiceAction(_Strict):
    """Stop or start one service of a site (``backend``, ``mosquitto``, ``nats``, ``redis``)."""

    site: SiteId
    service: Service = "backend"
    kill: bool = Field(False, description="SIGKILL instead of a clean stop (backend only)")


class PartitionAction(_Strict):
    """Cut (``partition``) or restore (``heal``) the link: stops/starts ``site``'s NATS."""

    site: SiteId = "b"


class ReplayAction(_Strict):
    """Publish again, on ``site``'s NATS, the last message seen on a subject at ``from_site``.

    ``subject`` is a prefix (``aurora.alerts.federation.``). The copy carries no
    ``Nats-Msg-Id``, so it reaches the application, whose own dedup (or echo drop) must
    keep it from being stored twice.
    """

    subject: str = Field(min_length=1)
    from_site: SiteId
    site: SiteId
    count: Annotated[int, Field(ge=1, le=1000)] = 1


# ---------------------------------------------------------------- expectations


class AlertExpect(_Strict):
    """An alert seen at ``site`` (Redis stream or alert queue) within ``within``."""

    type: str | None = None
    severity: Severity | None = None
    min_severity: Severity | None = None
    device: DeviceId | None = None
    site: SiteId | None = None
    origin: SiteId | None = Field(None, description="origin site of a federated alert")
    contains: str | None = Field(None, description="text in the alert's title or description")
    within: Duration = 5.0
    count: Annotated[int, Field(ge=1)] = 1
    scope: Literal["step", "scenario"] = Field(
        "step", description="count events since this step's action, or since the scenario began"
    )


class NoAlertExpect(_Strict):
    """No alert matching the filter during ``for`` after the step's action."""

    type: str | None = None
    severity: Severity | None = None
    min_severity: Severity | None = None
    device: DeviceId | None = None
    site: SiteId | None = None
    origin: SiteId | None = None
    contains: str | None = Field(None, description="text in the alert's title or description")
    for_: Duration = Field(1.0, alias="for")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class DeviceExpect(_Strict):
    """A device's state at a site (``GET /api/v1/cps/devices``) within ``within``."""

    id: DeviceId
    site: SiteId | None = None
    registered: bool = True
    trust: TrustStatus | None = None
    attestation: AttestationStatus | None = None
    risk_min: float | None = None
    risk_max: float | None = None
    firmware_version: str | None = None
    within: Duration = 5.0


class CommandExpect(_Strict):
    """A command received by the device (its downlink) within ``within``."""

    device: DeviceId
    verb: CommandVerb
    within: Duration = 2.0
    count: Annotated[int, Field(ge=1)] = 1


class NoCommandExpect(_Strict):
    """No command (of ``verb``, if given) reaches the device during ``for``."""

    device: DeviceId
    verb: CommandVerb | None = None
    for_: Duration = Field(1.0, alias="for")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class LockExpect(_Strict):
    """A simulated door's lock state within ``within``."""

    device: DeviceId
    state: LockState
    within: Duration = 2.0


class AuditExpect(_Strict):
    """An ``aurora:audit`` entry of ``type`` (fields in ``data`` compared) within ``within``."""

    type: str
    site: SiteId | None = None
    device: DeviceId | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    within: Duration = 5.0
    count: Annotated[int, Field(ge=1)] = 1
    scope: Literal["step", "scenario"] = Field(
        "step", description="count events since this step's action, or since the scenario began"
    )


class LinkExpect(_Strict):
    """The federation link as ``site`` sees it (``GET /api/v1/sites``) within ``within``."""

    site: SiteId
    peer: SiteId
    status: LinkStatus
    within: Duration = 10.0


class MetricExpect(_Strict):
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


class EventMatch(_Strict):
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


class LatencyExpect(_Strict):
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
    scope: Literal["scenario", "step"] = Field(
        "scenario", description="pair events of the whole scenario so far, or of this step"
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _some_bound(self) -> LatencyExpect:
        if self.p50 is None and self.p99 is None and self.max is None:
            raise ValueError("give at least one bound: p50, p99 or max")
        return self


EXPECTATION_KEYS = (
    "alert",
    "no_alert",
    "device",
    "command",
    "no_command",
    "lock",
    "audit",
    "link",
    "metric",
    "latency",
)


class Expectation(_Strict):
    """One expectation: exactly one of the keys."""

    alert: AlertExpect | None = None
    no_alert: NoAlertExpect | None = None
    device: DeviceExpect | None = None
    command: CommandExpect | None = None
    no_command: NoCommandExpect | None = None
    lock: LockExpect | None = None
    audit: AuditExpect | None = None
    link: LinkExpect | None = None
    metric: MetricExpect | None = None
    latency: LatencyExpect | None = None

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data: Any) -> Any:
        if isinstance(data, dict):
            given = [key for key in EXPECTATION_KEYS if key in data]
            if len(given) != 1 and not (set(data) - set(EXPECTATION_KEYS)):
                raise ValueError(
                    "an expectation has exactly one of: " + ", ".join(EXPECTATION_KEYS)
                    if not given
                    else f"an expectation has exactly one key, got {', '.join(given)}"
                )
        return data

    @property
    def key(self) -> str:
        """Which expectation this is."""
        return next(key for key in EXPECTATION_KEYS if getattr(self, key) is not None)

    @property
    def body(self) -> BaseModel:
        """The expectation's parameters."""
        value: BaseModel = getattr(self, self.key)
        return value


ACTION_KEYS = (
    "swipe",
    "drift",
    "attest",
    "raise_alert",
    "publish",
    "fault",
    "command",
    "grant",
    "revoke",
    "stop",
    "start",
    "partition",
    "heal",
    "replay",
    "wait",
)


class Step(_Strict):
    """A named step: at most one action, then its expectations.

    ``at`` starts the step that long after the scenario started; ``after`` that long after
    the previous step finished (default: at once). The step finishes when every
    expectation has been decided.
    """

    name: str = Field(min_length=1)
    at: Duration | None = None
    after: Duration | None = None

    swipe: SwipeAction | None = None
    drift: DriftAction | None = None
    attest: AttestAction | None = None
    raise_alert: RaiseAlertAction | None = None
    publish: PublishAction | None = None
    fault: FaultAction | None = None
    command: OperatorCommandAction | None = None
    grant: GrantSpec | None = None
    revoke: RevokeAction | None = None
    stop: ServiceAction | None = None
    start: ServiceAction | None = None
    partition: PartitionAction | None = None
    heal: PartitionAction | None = None
    replay: ReplayAction | None = None
    wait: Duration | None = None

    expect: list[Expectation] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        given = [key for key in ACTION_KEYS if getattr(self, key) is not None]
        if len(given) > 1:
            raise ValueError(f"a step does one action, this one has {', '.join(given)}")
        if self.at is not None and self.after is not None:
            raise ValueError("give `at` (from the scenario start) or `after`, not both")
        return self

    @property
    def action_key(self) -> str | None:
        """The action's key, or None for a step that only checks."""
        return next((key for key in ACTION_KEYS if getattr(self, key) is not None), None)

    @property
    def action(self) -> Any:
        """The action's parameters (a model, or seconds for ``wait``)."""
        key = self.action_key
        return None if key is None else getattr(self, key)


class Scenario(_Strict):
    """A whole scenario file."""

    name: str = Field(min_length=1, description="readable name; pytest item name")
    description: str = ""
    markers: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] = Field(
        default_factory=list, description="extra pytest markers (must be registered)"
    )
    timeout: Duration = Field(120.0, description="the whole scenario must end within this")
    sites: dict[SiteId, SiteSpec] = Field(default_factory=lambda: {"a": SiteSpec()})
    fleet: list[NodeSpec] = Field(default_factory=list)
    grants: list[GrantSpec] = Field(default_factory=list)
    steps: list[Step] = Field(min_length=1)

    @field_validator("sites")
    @classmethod
    def _one_or_two_sites(cls, value: dict[str, SiteSpec]) -> dict[str, SiteSpec]:
        if not 1 <= len(value) <= 2:
            raise ValueError(f"a scenario has one or two sites, not {len(value)}")
        return value

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        # Cross references are checked here so a typo fails at `scenario check`, not
        # half-way through a run. Locations are reported by the loader from the message.
        ids = [node.id for node in self.fleet]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"fleet: device ids used twice: {', '.join(duplicates)}")
        for node in self.fleet:
            if node.site is not None and node.site not in self.sites:
                raise ValueError(f"fleet: {node.id} is at unknown site {node.site!r}")
        return self

    @property
    def first_site(self) -> str:
        """The site used when a step names none."""
        return next(iter(self.sites))

    def site_of(self, device_id: str) -> str:
        """The site a device of the fleet runs at (first site for unknown devices)."""
        for node in self.fleet:
            if node.id == device_id:
                return node.site or self.first_site
        return self.first_site

    def bench_key(self) -> str:
        """Scenarios with equal keys can share one running bench."""
        return json.dumps({site: spec.env() for site, spec in self.sites.items()}, sort_keys=True)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a scenario file (for editors)."""
    schema = Scenario.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "aurora-bench scenario"
    return schema
