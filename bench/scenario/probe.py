"""The probe: MQTT, Redis streams, NATS and the REST API of every site into one timeline.

Per site it runs four named tasks in one TaskGroup:

* ``mqtt``: the ``bench-probe`` identity subscribed to ``#`` (the broker's ACL lets it read
  everything and write ``aurora/#``, which is also how raw publishes go out);
* ``redis``: ``XREAD`` on ``aurora:cps:alerts`` and ``aurora:audit`` from the entries that
  existed when the probe started;
* ``nats``: a core subscription to ``aurora.>`` (gossip, federated alerts);
* ``rest``: polls ``/api/v1/cps/devices`` and ``/api/v1/system/topology`` and records a
  DEVICE / LINK event whenever what matters of one changes.

Every source reconnects on its own when its server goes away (a scenario stops brokers and
backends on purpose); an outage shows in the timeline as a NOTE, never as a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import nats
import redis.asyncio as aioredis

from backend.bus import ALERTS_STREAM, AUDIT_STREAM
from backend.contract import ContractViolation, MessageKind, parse_topic
from backend.mqtt import client_tls_context
from bench.benchfile import SiteInfo
from bench.scenario.timeline import EventKind, Timeline

log = logging.getLogger(__name__)

#: Which stream entries become which events; telemetry readings are left out of the
#: timeline (the audit copy of each reading is enough and keeps reports readable).
_STREAM_KINDS = {ALERTS_STREAM: EventKind.ALERT, AUDIT_STREAM: EventKind.AUDIT}
_DEVICE_FIELDS = (
    "trust_status",
    "attestation_status",
    "risk_score",
    "firmware_hash",
    "firmware_version",
    "reported_hash",
    # Each status refreshes it (seed 001): a DEVICE event per heartbeat, so a scenario can
    # see it move forward.
    "last_seen",
)
RETRY_S = 0.2


@dataclass(frozen=True)
class ProbeIdentity:
    """The probe's TLS material: the bench CA and the ``bench-probe`` certificate."""

    ca: Path
    cert: Path
    key: Path

    def tls_context(self) -> ssl.SSLContext:
        """Client TLS context presenting the probe certificate."""
        return client_tls_context(self.ca, self.cert, self.key)


class Probe:
    """Observes sites into ``timeline``; use ``async with`` or :meth:`start` / :meth:`aclose`.

    ``start`` returns once every source of every site is connected (or ``ready_timeout_s``
    has passed), so a scenario's first action cannot race the subscriptions.
    """

    def __init__(
        self,
        sites: dict[str, SiteInfo],
        identity: ProbeIdentity,
        timeline: Timeline,
        *,
        poll_interval_s: float = 0.1,
        client_prefix: str = "bench-probe",
    ) -> None:
        self._sites = sites
        self._identity = identity
        self._timeline = timeline
        self._poll_s = poll_interval_s
        self._prefix = client_prefix
        self._tasks: list[asyncio.Task[None]] = []
        self._ready: dict[str, asyncio.Event] = {}
        self._mqtt: dict[str, aiomqtt.Client] = {}
        self._mqtt_ready: dict[str, asyncio.Event] = {}
        self._stream_positions: dict[str, dict[Any, Any]] = {}
        self._stopping = asyncio.Event()

    async def __aenter__(self) -> Probe:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def start(self, ready_timeout_s: float = 10.0) -> None:
        """Start every source and wait until each is connected."""
        for site_id, site in self._sites.items():
            self._mqtt_ready[site_id] = asyncio.Event()
            for name, source in (
                ("mqtt", self._run_mqtt),
                ("redis", self._run_redis),
                ("nats", self._run_nats),
                ("rest", self._run_rest),
            ):
                ready = asyncio.Event()
                self._ready[f"{site_id}/{name}"] = ready
                self._tasks.append(
                    asyncio.create_task(
                        self._supervise(site_id, name, source, site, ready),
                        name=f"probe-{site_id}-{name}",
                    )
                )
        waiting = [event.wait() for event in self._ready.values()]
        try:
            async with asyncio.timeout(ready_timeout_s):
                await asyncio.gather(*waiting)
        except TimeoutError:
            late = [name for name, event in self._ready.items() if not event.is_set()]
            self._timeline.record(
                EventKind.NOTE, "probe", text=f"probe sources not ready: {', '.join(late)}"
            )

    async def aclose(self) -> None:
        """Stop every source (safe to call twice)."""
        tasks, self._tasks = self._tasks, []
        # Redis readers stop on a flag between blocking reads: cancelling redis-py in the
        # middle of XREAD BLOCK can leave its connection close waiting forever.
        self._stopping.set()
        readers = [task for task in tasks if task.get_name().endswith("-redis")]
        if readers:
            await asyncio.wait(readers, timeout=2.0)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def publish(
        self, site_id: str, topic: str, payload: bytes, qos: int = 1, timeout_s: float = 5.0
    ) -> None:
        """Publish raw bytes as the probe identity (its ACL allows ``aurora/#``)."""
        ready = self._mqtt_ready.get(site_id)
        if ready is None:
            raise KeyError(site_id)
        async with asyncio.timeout(timeout_s):
            await ready.wait()
            await self._mqtt[site_id].publish(topic, payload, qos=qos)

    # ------------------------------------------------------------ supervision

    async def _supervise(
        self,
        site_id: str,
        name: str,
        source: Callable[[str, SiteInfo, asyncio.Event], Awaitable[None]],
        site: SiteInfo,
        ready: asyncio.Event,
    ) -> None:
        down = False  # one NOTE per outage, not one per retry
        while not self._stopping.is_set():
            try:
                await source(site_id, site, ready)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if not down:
                    down = True
                    self._timeline.record(
                        EventKind.NOTE,
                        "probe",
                        site=site_id,
                        text=f"probe lost {name}: {type(error).__name__}: {error}"[:200],
                    )
            else:
                down = False
            await asyncio.sleep(RETRY_S)

    # ------------------------------------------------------------ MQTT

    async def _run_mqtt(self, site_id: str, site: SiteInfo, ready: asyncio.Event) -> None:
        client = aiomqtt.Client(
            site.mqtt.host,
            site.mqtt.port,
            identifier=f"{self._prefix}-{site_id}-{id(self)}",
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_context=self._identity.tls_context() if site.mqtt.tls else None,
        )
        async with client:
            await client.subscribe("#", qos=1)
            self._mqtt[site_id] = client
            self._mqtt_ready[site_id].set()
            ready.set()
            try:
                async for message in client.messages:
                    self._on_mqtt(site_id, str(message.topic), _as_bytes(message.payload))
            finally:
                self._mqtt_ready[site_id].clear()

    def _on_mqtt(self, site_id: str, topic: str, payload: bytes) -> None:
        try:
            parsed = parse_topic(topic)
        except ContractViolation:
            kind, device = None, _device_from_topic(topic)
        else:
            kind, device = parsed.kind, parsed.device_id
        body = _json_or_text(payload)
        if kind is MessageKind.COMMAND:
            verb = body.get("verb") if isinstance(body, dict) else None
            self._timeline.record(
                EventKind.COMMAND, "mqtt", site=site_id, device=device, verb=verb, payload=body
            )
            return
        self._timeline.record(
            EventKind.MQTT,
            "mqtt",
            site=site_id,
            device=device,
            topic=topic,
            message=kind.value if kind else None,
            payload=body,
            size=len(payload),
        )

    # ------------------------------------------------------------ Redis

    async def _run_redis(self, site_id: str, site: SiteInfo, ready: asyncio.Event) -> None:
        client = aioredis.from_url(site.redis, decode_responses=True)
        try:
            # Positions survive a reconnect (Redis restarted on purpose): nothing written
            # meanwhile is skipped, nothing read twice.
            last: dict[Any, Any] = self._stream_positions.setdefault(site_id, {})
            for stream in _STREAM_KINDS:
                if stream not in last:
                    newest = await client.xrevrange(stream, count=1)
                    last[stream] = newest[0][0] if newest else "0-0"
            ready.set()
            while not self._stopping.is_set():
                replies: Any = await client.xread(last, block=100, count=500)  # type: ignore[arg-type]
                for stream, entries in replies or []:
                    for entry_id, fields in entries:
                        last[stream] = entry_id
                        self._on_stream(site_id, stream, entry_id, fields)
        finally:
            await client.aclose()

    def _on_stream(self, site_id: str, stream: str, entry_id: str, fields: dict[str, str]) -> None:
        data = _json_or_text(fields.get("data", "").encode())
        record = data if isinstance(data, dict) else {"value": data}
        kind = _STREAM_KINDS[stream]
        device = record.get("device_id") if isinstance(record.get("device_id"), str) else None
        if kind is EventKind.ALERT:
            # Fields beside `data` (the device's payload as sent, for seed 001's "forwarded
            # verbatim") are kept too; the record's own keys win.
            extra = {k: v for k, v in fields.items() if k not in {"data", "type", "trace"}}
            data = {
                **extra,
                **record,
                "type": record.get("type") or fields.get("type"),
                "entry": entry_id,
            }
            self._timeline.record_data(kind, "redis", data, site=site_id, device=device)
        else:
            self._timeline.record(
                kind, "redis", site=site_id, device=device, type=fields.get("type"), data=record
            )

    # ------------------------------------------------------------ NATS

    async def _run_nats(self, site_id: str, site: SiteInfo, ready: asyncio.Event) -> None:
        lost = asyncio.Event()

        async def closed() -> None:
            lost.set()

        async def on_error(_error: Exception) -> None:
            return None

        client = await nats.connect(
            site.nats,
            allow_reconnect=False,
            connect_timeout=2,
            closed_cb=closed,
            disconnected_cb=closed,
            error_cb=on_error,
            name=f"{self._prefix}-{site_id}",
        )
        try:

            async def on_message(message: Any) -> None:
                body = _json_or_text(message.data)
                self._timeline.record(
                    EventKind.NATS, "nats", site=site_id, subject=message.subject, data=body
                )

            await client.subscribe("aurora.>", cb=on_message)
            await client.flush()
            ready.set()
            await lost.wait()
            raise ConnectionError("NATS connection lost")
        finally:
            with contextlib.suppress(Exception):
                await client.close()

    # ------------------------------------------------------------ REST

    async def _run_rest(self, site_id: str, site: SiteInfo, ready: asyncio.Event) -> None:
        devices: dict[str, tuple[Any, ...]] = {}
        links: dict[str, Any] = {}
        async with site.api_client(timeout=2.0) as http:
            first = True
            while True:
                try:
                    await self._poll_devices(http, site_id, devices)
                    await self._poll_links(http, site_id, links)
                except httpx.HTTPError:
                    if first:
                        ready.set()  # a site whose backend is down is still "observed"
                    raise
                if first:
                    ready.set()
                    first = False
                await asyncio.sleep(self._poll_s)

    async def _poll_devices(
        self, http: httpx.AsyncClient, site_id: str, seen: dict[str, tuple[Any, ...]]
    ) -> None:
        response = await http.get("/api/v1/cps/devices")
        if response.status_code != 200:
            return
        for item in response.json().get("items", []):
            device_id = item.get("device_id")
            if not isinstance(device_id, str):
                continue
            state = tuple(item.get(name) for name in _DEVICE_FIELDS)
            if seen.get(device_id) != state:
                seen[device_id] = state
                self._timeline.record_data(
                    EventKind.DEVICE, "api", item, site=site_id, device=device_id
                )

    async def _poll_links(
        self, http: httpx.AsyncClient, site_id: str, seen: dict[str, Any]
    ) -> None:
        response = await http.get("/api/v1/system/topology")
        if response.status_code != 200:
            return  # federation disabled: no topology
        body = response.json()
        counters = (body.get("federation") or {}).get("counters") or {}
        for name, value in counters.items():
            # Heartbeats tick all the time; the rest (duplicates, echoes_dropped, ...)
            # become METRIC samples named federation_<counter>.
            if name == "heartbeats_received" or not isinstance(value, int | float):
                continue
            key = f"counter:{name}"
            if seen.get(key) != value:
                seen[key] = value
                self._timeline.record(
                    EventKind.METRIC, "api", site=site_id, name=f"federation_{name}",
                    labels={}, value=float(value),
                )  # fmt: skip
        for link in body.get("links", []):
            ends = {link.get("site_a"), link.get("site_b")}
            if site_id not in ends:
                continue
            peer = next((end for end in ends if end != site_id), None)
            status = link.get("status")
            key = str(link.get("link_id") or peer)
            if seen.get(key) != status:
                seen[key] = status
                self._timeline.record(
                    EventKind.LINK, "api", site=site_id, peer=peer, status=status, link=link
                )


def _as_bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode()
    return b"" if payload is None else str(payload).encode()


def _json_or_text(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return payload[:512].decode("utf-8", "replace")


def _device_from_topic(topic: str) -> str | None:
    parts = topic.split("/")
    return parts[2] if len(parts) >= 3 and parts[0] == "aurora" and parts[2] else None
