"""What a step can do: one model per action, keyed in the file by the action's name.

Every action that concerns one device names it with ``device:``. The runner performs each
kind with its own function (:mod:`bench.scenario.perform`).
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, RootModel, model_validator

from backend.contract import CommandVerb, Severity
from bench.scenario.fields import BadgeUid, DeviceId, Duration, SiteId, Strict
from bench.scenario.sentinel_steps import SENTINEL_ACTIONS, SentinelAction
from bench.scenario.token_steps import TOKEN_ACTIONS, TokenAction
from bench.scenario.wan_action import WanAction
from simulators.faults import Fault


class Service(StrEnum):
    """A server of a site the runner can stop and start."""

    BACKEND = "backend"
    MOSQUITTO = "mosquitto"
    NATS = "nats"
    REDIS = "redis"


class Respond(StrEnum):
    """How a simulated node answers an attestation challenge."""

    HONEST = "honest"
    TAMPERED = "tampered"
    EXPIRED_CERT = "expired_cert"
    REPLAY = "replay"
    SILENT = "silent"


class SwipeAction(Strict):
    """Present a badge at a reader/door; ``count`` swipes ``interval`` apart."""

    device: DeviceId
    uid: BadgeUid
    count: Annotated[int, Field(ge=1, le=10_000)] = 1
    interval: Duration = 0.0


class DriftAction(Strict):
    """Change the node's flash image: its next status reports a new firmware hash."""

    device: DeviceId


class AttestAction(Strict):
    """Ask the backend to challenge a device (``POST .../attestations``).

    ``respond`` makes a simulated node answer honestly, with a flash image that changed
    since its last status (``tampered``: the hash no longer matches the baseline), signed
    under an expired certificate (``expired_cert``), by replaying its previous response
    (``replay``), or not at all (``silent``: its clock is skewed so the challenge looks
    expired to it).
    """

    device: DeviceId
    respond: Respond = Respond.HONEST


class RaiseAlertAction(Strict):
    """Create an alert at a site through ``POST /api/v1/alerts`` (e.g. a C2 detection)."""

    site: SiteId | None = None
    type: str = "c2_beacon"
    severity: Severity = Severity.CRITICAL
    title: str = "C2 beacon detected"
    device: DeviceId | None = None
    iocs: list[Any] = Field(default_factory=list)
    count: Annotated[int, Field(ge=1, le=10_000)] = 1


class PublishAction(Strict):
    """Publish raw bytes on a topic as a device (or as the probe identity), even malformed.

    Give the payload as ``payload`` (text sent verbatim), ``json`` (any YAML value encoded
    as JSON), or ``hex`` (bytes). ``size`` pads ``payload`` to that many bytes (oversize
    tests). ``device`` publishes with that device's certificate.
    """

    topic: str
    site: SiteId | None = None
    payload: str | None = None
    json_: Any = Field(None, alias="json")
    hex: str | None = Field(None, pattern=r"^([0-9a-fA-F]{2})*$")
    size: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    qos: Literal[0, 1] = 1
    device: DeviceId | None = Field(None, description="publish with this device's cert")
    count: Annotated[int, Field(ge=1, le=100_000)] = 1

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


class FaultAction(Strict):
    """Tell a simulated node to misbehave (:class:`simulators.faults.Fault`)."""

    device: DeviceId
    kind: Fault
    params: dict[str, Any] = Field(default_factory=dict)


class OperatorCommandAction(Strict):
    """An operator lock verb through ``POST /api/v1/cps/devices/{id}/commands``."""

    device: DeviceId
    verb: CommandVerb
    site: SiteId | None = None


class GrantAction(Strict):
    """Which badge UID opens which doors (``["*"]`` = every door) at a site."""

    uid: BadgeUid
    doors: list[str] = Field(min_length=1)
    site: SiteId | None = None


class RevokeAction(Strict):
    """Revoke every grant of ``uid`` at a site."""

    uid: BadgeUid
    site: SiteId | None = None


class ServiceAction(Strict):
    """Stop or start one service of a site (``backend``, ``mosquitto``, ``nats``, ``redis``)."""

    site: SiteId
    service: Service = Service.BACKEND
    kill: bool = Field(False, description="SIGKILL instead of a clean stop (backend only)")


class StopAction(ServiceAction):
    """``stop``: stop a service (``kill: true`` for SIGKILL of the backend)."""


class StartAction(ServiceAction):
    """``start``: start a stopped service again."""


class PartitionAction(Strict):
    """``partition``: cut the federation link by stopping ``site``'s NATS."""

    site: SiteId = "b"


class HealAction(PartitionAction):
    """``heal``: restore the link by starting ``site``'s NATS again."""


class ReplayAction(Strict):
    """Publish again, on ``site``'s NATS, the last message seen on a subject at ``from_site``.

    ``subject`` is a prefix (``aurora.alerts.federation.``). The copy gets a new stream
    sequence and carries no ``Nats-Msg-Id`` (``new_msg_id: true``: a fresh one each), so
    JetStream's own dedup lets it through and it reaches the application, whose dedup (or
    echo drop) must keep it from being stored twice.
    """

    subject: str = Field(min_length=1)
    from_site: SiteId
    site: SiteId
    count: Annotated[int, Field(ge=1, le=1000)] = 1
    new_msg_id: bool = Field(False, description="send each copy with a fresh Nats-Msg-Id")


class WaitAction(RootModel[Duration]):
    """``wait: 2s``: do nothing for that long."""

    model_config = ConfigDict(frozen=True)

    @property
    def seconds(self) -> float:
        """How long to wait."""
        return float(self.root)


#: Every action, by the key that names it in a step.
ACTIONS: dict[str, type[Strict] | type[WaitAction]] = {
    "swipe": SwipeAction,
    "drift": DriftAction,
    "attest": AttestAction,
    "raise_alert": RaiseAlertAction,
    "publish": PublishAction,
    "fault": FaultAction,
    "command": OperatorCommandAction,
    "grant": GrantAction,
    "revoke": RevokeAction,
    "stop": StopAction,
    "start": StartAction,
    "partition": PartitionAction,
    "heal": HealAction,
    "replay": ReplayAction,
    "wait": WaitAction,
    **SENTINEL_ACTIONS,
    "wan": WanAction,
    **TOKEN_ACTIONS,
}

Action = (
    SwipeAction
    | DriftAction
    | AttestAction
    | RaiseAlertAction
    | PublishAction
    | FaultAction
    | OperatorCommandAction
    | GrantAction
    | RevokeAction
    | ServiceAction
    | PartitionAction
    | ReplayAction
    | WaitAction
    | SentinelAction
    | WanAction
    | TokenAction
)
