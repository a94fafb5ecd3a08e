"""Doing a step's action: one function per kind of action, dispatched on its model.

Each function gets the action and the :class:`Stage` it acts on (the running bench, the
fleet, the probe, one :class:`~bench.scenario.site_client.SiteClient` per site, the
timeline) and returns a short description for reports. An action that cannot be done
raises :class:`StepError`, which fails its step.
"""

from __future__ import annotations

import asyncio
import functools
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import nats

from bench.errors import BenchError
from bench.scenario.actions import (
    AttestAction,
    DriftAction,
    FaultAction,
    GrantAction,
    HealAction,
    OperatorCommandAction,
    PartitionAction,
    PublishAction,
    RaiseAlertAction,
    ReplayAction,
    Respond,
    RevokeAction,
    Service,
    StartAction,
    StopAction,
    SwipeAction,
    WaitAction,
)
from bench.scenario.fleet_adapter import ScenarioFleet
from bench.scenario.probe import Probe
from bench.scenario.schema import Scenario
from bench.scenario.sentinel_probe import SentinelProbe
from bench.scenario.site_client import SiteClient
from bench.scenario.timeline import EventKind, Timeline
from bench.scenario.token_clients import TokenClients
from bench.scenario.token_clients import connect as _token_connect
from bench.scenario.token_clients import publish as _token_publish
from bench.scenario.token_clients import subscribe as _token_subscribe
from bench.scenario.token_steps import TokenConnectAction, TokenPublishAction, TokenSubscribeAction
from bench.site import RunningBench
from simulators.faults import Fault
from simulators.mqtt_link import device_tls_context


class StepError(BenchError):
    """An action could not be done (HTTP error, unknown device, service did not start)."""


@dataclass
class Stage:
    """What actions act on, and what they changed (for the cleanup after the scenario)."""

    scenario: Scenario
    bench: RunningBench
    timeline: Timeline
    sites: dict[str, SiteClient]
    probe: Probe | None = None
    fleet: ScenarioFleet | None = None
    #: The Sentinel's observer and client player (scenarios with ``sentinel: true``).
    sentinel: SentinelProbe | None = None
    #: (site, grant id) of every grant made, revoked when the scenario ends.
    grants: list[tuple[str, str]] = field(default_factory=list)
    #: (site, service) -> stopped now; stopped services are started again at the end.
    stopped: dict[tuple[str, Service], bool] = field(default_factory=dict)
    #: Token clients connected by name (seed 004), disconnected at the end.
    token_clients: TokenClients = field(default_factory=TokenClients)

    def site_of(self, site: str | None, device: str | None = None) -> str:
        """The site named, else the device's site, else the first site."""
        if site is not None:
            return site
        return self.scenario.site_of(device) if device else self.scenario.first_site

    def api(self, site: str) -> SiteClient:
        """The REST client of ``site``."""
        return self.sites[site]

    def nodes(self) -> ScenarioFleet:
        """The fleet (the loader made sure actions on nodes have one)."""
        if self.fleet is None:
            raise StepError("this scenario has no fleet")
        return self.fleet

    def note(self, text: str, site: str | None = None, device: str | None = None) -> None:
        """A NOTE on the timeline."""
        self.timeline.record(EventKind.NOTE, "runner", site=site, device=device, text=text)

    def record(
        self,
        kind: str,
        site: str | None = None,
        device: str | None = None,
        at: float | None = None,
        **data: Any,
    ) -> None:
        """Record what an action did; ``at``: when it was sent (its effects may come first)."""
        self.timeline.record(
            EventKind.ACTION, "runner", site=site, device=device, t=at, action=kind, **data
        )

    async def stop_service(self, site: str, service: Service, kill: bool = False) -> None:
        """Stop one service of a site (remembered, so cleanup starts it again)."""
        if service is Service.BACKEND:
            await asyncio.to_thread(self.bench.stop_backend, site, kill=kill)
        else:
            await asyncio.to_thread(self.bench.stop_service, site, service.value)
        self.stopped[(site, service)] = True

    async def start_service(self, site: str, service: Service) -> None:
        """Start one service of a site."""
        if service is Service.BACKEND:
            await asyncio.to_thread(self.bench.start_backend, site)
        else:
            await asyncio.to_thread(self.bench.start_service, site, service.value)
        self.stopped[(site, service)] = False


@functools.singledispatch
async def perform(action: object, stage: Stage) -> str:
    """Do ``action``; a short description of what was done."""
    raise StepError(f"no way to perform {type(action).__name__}")


# Token clients (seed 004): their functions live with their models' I/O.
perform.register(TokenConnectAction, _token_connect)
perform.register(TokenPublishAction, _token_publish)
perform.register(TokenSubscribeAction, _token_subscribe)


@perform.register
async def _wait(action: WaitAction, stage: Stage) -> str:
    await asyncio.sleep(action.seconds)
    return f"{action.seconds:g}s"


@perform.register
async def _swipe(action: SwipeAction, stage: Stage) -> str:
    fleet = stage.nodes()
    for index in range(action.count):
        if index:
            await asyncio.sleep(action.interval)
        fleet.swipe(action.device, action.uid)
    site = stage.site_of(None, action.device)
    stage.record("swipe", site, action.device, uid=action.uid, count=action.count)
    return f"{action.uid} x{action.count}" if action.count > 1 else action.uid


@perform.register
async def _drift(action: DriftAction, stage: Stage) -> str:
    stage.nodes().fault(action.device, Fault.FIRMWARE_DRIFT, {})
    stage.record("drift", stage.site_of(None, action.device), action.device)
    return "flash image changed"


@perform.register
async def _fault(action: FaultAction, stage: Stage) -> str:
    stage.nodes().fault(action.device, action.kind, dict(action.params))
    stage.record(
        "fault",
        stage.site_of(None, action.device),
        action.device,
        fault=action.kind.value,
        params=dict(action.params),
    )
    return action.kind.value


@perform.register
async def _attest(action: AttestAction, stage: Stage) -> str:
    site = stage.site_of(None, action.device)
    if action.respond is not Respond.HONEST:
        if stage.fleet is None or not stage.fleet.has(action.device):
            raise StepError(f"`respond: {action.respond}` needs {action.device} in the fleet")
        await stage.fleet.prepare_attestation(action.device, action.respond.value)
    nonce = await stage.api(site).challenge(action.device)
    stage.record("attest", site, action.device, respond=action.respond.value, nonce=nonce)
    return f"challenge {nonce} ({action.respond})"


@perform.register
async def _raise_alert(action: RaiseAlertAction, stage: Stage) -> str:
    site = stage.site_of(action.site, action.device)
    for _ in range(action.count):
        body: dict[str, Any] = {
            "type": action.type,
            "severity": action.severity.value,
            "title": action.title,
            "iocs": list(action.iocs),
        }
        if action.device is not None:
            body["device_id"] = action.device
        sent = stage.timeline.clock()
        alert_id = await stage.api(site).raise_alert(body)
        stage.record(
            "raise_alert", site, action.device, at=sent, type=action.type,
            severity=action.severity.value, id=alert_id,
        )  # fmt: skip
    return f"{action.count} x {action.type} at {site}"


@perform.register
async def _publish(action: PublishAction, stage: Stage) -> str:
    site = stage.site_of(action.site, action.device)
    payload = action.body()
    for _ in range(action.count):
        if action.device is None:
            if stage.probe is None:  # pragma: no cover - the runner starts the probe first
                raise StepError("no probe to publish with")
            await stage.probe.publish(site, action.topic, payload, qos=action.qos)
        else:
            await _publish_as(stage, site, action.device, action.topic, payload, action.qos)
    who = action.device or "probe"
    stage.record("publish", site, action.device, topic=action.topic, size=len(payload), who=who)
    return f"{action.count} x {len(payload)} bytes on {action.topic} as {who}"


async def _publish_as(  # noqa: PLR0917 - one publish, spelled out
    stage: Stage, site: str, device: str, topic: str, payload: bytes, qos: int
) -> None:
    pair = stage.bench.pki.device(device)
    context = device_tls_context(stage.bench.pki.ca_cert, pair.cert, pair.key)
    endpoint = stage.bench.info.site(site).mqtt
    async with aiomqtt.Client(
        endpoint.host,
        endpoint.port,
        identifier=f"{device}-scenario-publish",
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_context=context,
    ) as client:
        await client.publish(topic, payload, qos=qos)


@perform.register
async def _command(action: OperatorCommandAction, stage: Stage) -> str:
    site = stage.site_of(action.site, action.device)
    await stage.api(site).command(action.device, action.verb.value)
    stage.record("command", site, action.device, verb=action.verb.value)
    return f"operator {action.verb.value}"


@perform.register
async def _grant(action: GrantAction, stage: Stage) -> str:
    site = stage.site_of(action.site)
    grant_id = await stage.api(site).grant(action.uid, action.doors)
    stage.grants.append((site, grant_id))
    stage.record("grant", site, uid=action.uid, doors=list(action.doors), id=grant_id)
    return f"{action.uid} -> {', '.join(action.doors)}"


@perform.register
async def _revoke(action: RevokeAction, stage: Stage) -> str:
    site = stage.site_of(action.site)
    api = stage.api(site)
    revoked = [
        str(grant["id"])
        for grant in await api.grants()
        if str(grant.get("uid", "")).upper() == action.uid.upper()
    ]
    if not revoked:
        raise StepError(f"no grant of uid {action.uid} at site {site} to revoke")
    for grant_id in revoked:
        await api.revoke(grant_id)
    stage.record("revoke", site, uid=action.uid, ids=revoked)
    return f"{len(revoked)} grant(s)"


@perform.register
async def _stop(action: StopAction, stage: Stage) -> str:
    await stage.stop_service(action.site, action.service, kill=action.kill)
    verb = "killed" if action.kill else "stopped"
    stage.note(f"{action.service} {verb}", site=action.site)
    return f"{action.service} of {action.site} {verb}"


@perform.register
async def _start(action: StartAction, stage: Stage) -> str:
    await stage.start_service(action.site, action.service)
    stage.note(f"{action.service} started", site=action.site)
    return f"{action.service} of {action.site} started"


@perform.register
async def _partition(action: PartitionAction, stage: Stage) -> str:
    await stage.stop_service(action.site, Service.NATS)
    stage.note("partitioned: NATS stopped", site=action.site)
    return "partitioned: NATS stopped"


@perform.register
async def _heal(action: HealAction, stage: Stage) -> str:
    await stage.start_service(action.site, Service.NATS)
    stage.note("healed: NATS restarted", site=action.site)
    return "healed: NATS restarted"


@perform.register
async def _replay(action: ReplayAction, stage: Stage) -> str:
    seen = [
        e
        for e in stage.timeline
        if e.kind is EventKind.NATS
        and e.site == action.from_site
        and str(e.get("subject", "")).startswith(action.subject)
    ]
    if not seen:
        raise StepError(
            f"no NATS message on {action.subject}* was seen at site {action.from_site} to replay"
        )
    last = seen[-1]
    data = last.get("data")
    payload = data.encode() if isinstance(data, str) else json.dumps(data).encode()
    subject = str(last.get("subject"))
    url = stage.bench.info.site(action.site).nats
    try:
        client = await nats.connect(url, allow_reconnect=False, connect_timeout=2)
    except Exception as error:
        raise StepError(f"cannot reach NATS of site {action.site}: {error}") from None
    try:
        for _ in range(action.count):
            # Another envelope for the same alert: a new message id defeats JetStream's
            # duplicate window, so only the application's dedup stands in the way.
            headers = {"Nats-Msg-Id": uuid.uuid4().hex} if action.new_msg_id else None
            await client.publish(subject, payload, headers=headers)
        await client.flush()
    finally:
        await client.close()
    stage.record(
        "replay", action.site, subject=subject, count=action.count, new_msg_id=action.new_msg_id
    )
    return f"{action.count} x {subject} from {action.from_site} at {action.site}"


# The Sentinel's actions live in their own module; importing it registers them.
from bench.scenario import sentinel_perform as _sentinel_perform  # noqa: E402

del _sentinel_perform
