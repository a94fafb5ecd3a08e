"""The Sentinel's scenario vocabulary (seed 003, issue 14): action and expectation models.

A scenario brings the Sentinel up with ``sentinel: true`` on its first site (the customer
origin). Client names in a file are the scenario's own: the runner adds a per-run suffix
(``acme`` becomes ``acme-1a2b3c``) so runs sharing a bench never meet each other's clients
or aggregation windows, and reports show the scenario's names.

Actions::

    sentinel_client: {id: acme, region: eu-west}            # created, connected, subscribed
    sentinel_client: {id: acme, credentials: bad, attempts: 30}  # refused connects
    sentinel_publish: {client: acme, json: {...}, count: 9, interval: 2s}  # via the origin
    sentinel_kill: {region: us-east}                         # SIGKILL a node
    sentinel_start: {region: us-east}                        # start it again

Expectations::

    security_event: {rule: reverse-shell, client: acme, severity: critical, within: 5s}
    delivered: {client: acme, contains: "door-7", within: 5s}
    not_delivered: {client: acme, contains: "secret", for: 3s}
    auth: {client: acme, result: denied, reason: bad_password, within: 5s}

Behaviour lives in :mod:`bench.scenario.sentinel_run` (perform, evaluate, describe), the
transports in :mod:`bench.scenario.sentinel_probe`.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from backend.contract import Severity
from bench.scenario.fields import DeviceId, Duration, Strict

#: The seed's regions (bench/services/sentinel_config.py REGIONS).
Region = Literal["us-east", "eu-west", "ap-south"]


class Credentials(StrEnum):
    """Which password a Sentinel client connects with."""

    GOOD = "good"
    BAD = "bad"


class SentinelClientAction(Strict):
    """Connect as a Sentinel client over MQTT at its region's node.

    ``credentials: good`` creates the client in the Auth DB (unless ``create: false``),
    connects and stays subscribed to its own topic until the scenario ends, recording each
    alert it receives (reconnecting to another node when its node goes away);
    ``credentials: bad`` tries ``attempts`` connects with a wrong password, each refused.
    """

    id: DeviceId
    region: Region = "us-east"
    credentials: Credentials = Credentials.GOOD
    create: bool = True
    attempts: Annotated[int, Field(ge=1, le=1000)] = 1

    @model_validator(mode="after")
    def _attempts_for_bad_only(self) -> SentinelClientAction:
        if self.credentials is Credentials.GOOD and self.attempts != 1:
            raise ValueError("`attempts` is for `credentials: bad` (a good client connects once)")
        return self


class SentinelPublishAction(Strict):
    """Publish ``clients/<client>/alerts`` through the origin Mosquitto as the alert publisher.

    The body is ``json`` (any YAML value), ``payload`` (text), or ``hex``; ``count`` copies
    ``interval`` apart (a regular interval is what a beacon looks like). Each copy gets
    ``"seq": n`` added when the body is a JSON object, so copies are distinct alerts.
    """

    client: DeviceId
    json_: Any = Field(None, alias="json")
    payload: str | None = None
    hex: str | None = Field(None, pattern=r"^([0-9a-fA-F]{2})*$")
    count: Annotated[int, Field(ge=1, le=10_000)] = 1
    interval: Duration = 0.0

    @model_validator(mode="after")
    def _one_body(self) -> SentinelPublishAction:
        given = [
            n for n, v in (("json", self.json_), ("payload", self.payload), ("hex", self.hex)) if v
        ]
        if len(given) != 1:
            raise ValueError("give exactly one of json, payload, hex")
        return self

    def body(self, seq: int) -> bytes:
        """The bytes of copy ``seq``."""
        if self.hex is not None:
            return bytes.fromhex(self.hex)
        if self.payload is not None:
            return self.payload.encode()
        value = self.json_
        if isinstance(value, dict):
            value = {**value, "seq": seq}
        return json.dumps(value, separators=(",", ":")).encode()


class SentinelNodeAction(Strict):
    """One Sentinel node, by region."""

    region: Region


class SentinelKillAction(SentinelNodeAction):
    """``sentinel_kill``: SIGKILL the region's node (started again at the end if left down).

    The step's action ends once every scenario client that was subscribed there has
    resubscribed at another node: the Sentinel delivers to MQTT subscribers at QoS 0 for
    now, so an alert published before that would be lost for them, not late.
    """


class SentinelStartAction(SentinelNodeAction):
    """``sentinel_start``: start the region's node again on its ports and store."""


#: Sentinel actions by key (registered in :data:`bench.scenario.actions.ACTIONS`).
SENTINEL_ACTIONS: dict[str, type[Strict]] = {
    "sentinel_client": SentinelClientAction,
    "sentinel_publish": SentinelPublishAction,
    "sentinel_kill": SentinelKillAction,
    "sentinel_start": SentinelStartAction,
}


# ---------------------------------------------------------------- expectations


class SecurityEventExpect(Strict):
    """A security event on ``aurora:sentinel:events`` within ``within``.

    ``count`` events must come; with ``at_most``, the whole ``within`` is watched and more
    than that many fail it (one aggregated event, not hundreds). ``closed`` picks the
    window's closing re-emission (true) or its opening (false); default: either.
    """

    stage: Literal["pattern", "anomaly", "auth"] | None = None
    rule: str | None = None
    client: DeviceId | None = None
    severity: Severity | None = None
    min_severity: Severity | None = None
    closed: bool | None = None
    within: Duration = 5.0
    count: Annotated[int, Field(ge=1)] = 1
    at_most: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> SecurityEventExpect:
        if self.at_most is not None and self.at_most < self.count:
            raise ValueError(f"at_most ({self.at_most}) is below count ({self.count})")
        return self


class DeliveredExpect(Strict):
    """The client's subscriber received an alert (``contains``: text in its body)."""

    client: DeviceId
    topic: str | None = Field(None, description="default: clients/<client>/alerts")
    contains: str | None = None
    within: Duration = 5.0
    count: Annotated[int, Field(ge=1)] = 1


class NotDeliveredExpect(Strict):
    """The client's subscriber received no alert (``contains``: with that text) for ``for``."""

    client: DeviceId
    topic: str | None = None
    contains: str | None = None
    for_: Duration = Field(3.0, alias="for")


class AuthExpect(Strict):
    """An auth-callout decision for the client on ``aurora:sentinel:auth``."""

    client: DeviceId
    result: Literal["allowed", "denied"]
    reason: str | None = None
    within: Duration = 5.0
    count: Annotated[int, Field(ge=1)] = 1


#: Sentinel expectations by key (registered in :data:`bench.scenario.checks.CHECKS`).
SENTINEL_CHECKS: dict[str, type[Strict]] = {
    "security_event": SecurityEventExpect,
    "delivered": DeliveredExpect,
    "not_delivered": NotDeliveredExpect,
    "auth": AuthExpect,
}

SentinelAction = (
    SentinelClientAction | SentinelPublishAction | SentinelKillAction | SentinelStartAction
)
SentinelCheck = SecurityEventExpect | DeliveredExpect | NotDeliveredExpect | AuthExpect
