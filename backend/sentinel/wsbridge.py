"""The seed's WebSocket bridge: origin Mosquitto -> WAF limits -> a Sentinel node's ``/mqtt``.

Mosquitto's own bridges have no WebSocket transport (DESIGN: Facts verified), so this small
process subscribes to the origin (its own certificate, a persistent MQTT v5 session) and
republishes each ``clients/<id>/alerts`` to the Sentinel ingress over MQTT-over-WebSocket.
:class:`Waf` stands for the seed's WAF: a message-size cap and a per-client token bucket
(the origin does not say which publisher sent a message, so the rate is kept per target
client), each refusal counted by reason. Pure; time is passed in.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field
from enum import StrEnum

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client import CollectorRegistry, Counter

from backend.sentinel.errors import SentinelError
from backend.sentinel.naming import check_client_id

log = logging.getLogger("backend.sentinel.wsbridge")
INGRESS_TOPIC_PREFIX = "sentinel/ingress/"


class Refusal(StrEnum):
    """Why the WAF refused a message."""

    OVERSIZE = "oversize"
    RATE = "rate"
    BAD_TOPIC = "bad_topic"


@dataclass
class Waf:
    """Message-size cap and a per-client rate limit (token bucket: ``rate_per_s``, ``burst``)."""

    max_message_bytes: int = 4096
    rate_per_s: float = 100.0
    burst: float = 200.0
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def admit(self, topic: str, payload: bytes, now: float) -> tuple[str, Refusal | None]:
        """(client id, None) when the message may pass, else (client id or "", reason)."""
        parts = topic.split("/")
        if len(parts) != 3 or parts[0] != "clients" or parts[2] != "alerts":
            return "", Refusal.BAD_TOPIC
        try:
            client_id = check_client_id(parts[1])
        except SentinelError:
            return "", Refusal.BAD_TOPIC
        if len(payload) > self.max_message_bytes:
            return client_id, Refusal.OVERSIZE
        tokens, last = self._buckets.get(client_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate_per_s)
        if tokens < 1.0:
            self._buckets[client_id] = (tokens, now)
            return client_id, Refusal.RATE
        self._buckets[client_id] = (tokens - 1.0, now)
        return client_id, None


class BridgeMetrics:
    """Counters of the bridge (own registry)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.forwarded = Counter(
            "sentinel_wsbridge_forwarded", "Alerts forwarded", registry=self.registry
        )
        self.refused = Counter(
            "sentinel_wsbridge_refused",
            "Alerts the WAF refused",
            ["reason"],
            registry=self.registry,
        )


@dataclass(frozen=True)
class Endpoint:
    """An MQTT endpoint and how to authenticate there."""

    host: str
    port: int
    tls: ssl.SSLContext
    username: str | None = None
    password: str | None = None
    websocket: bool = False


async def run_bridge(
    origin: Endpoint,
    targets: list[Endpoint],
    *,
    waf: Waf,
    metrics: BridgeMetrics,
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
    client_id: str = "sentinel-ws-bridge",
) -> None:
    """Forward until ``stop``; reconnects to the next target when one is lost."""
    loop = asyncio.get_running_loop()
    index = 0
    while not stop.is_set():
        target = targets[index % len(targets)]
        try:
            async with (
                aiomqtt.Client(
                    target.host,
                    target.port,
                    username=target.username,
                    password=target.password,
                    identifier=f"{client_id}-out",
                    protocol=aiomqtt.ProtocolVersion.V311,
                    tls_context=target.tls,
                    transport="websockets",
                    websocket_path="/mqtt",
                ) as out,
                aiomqtt.Client(
                    origin.host,
                    origin.port,
                    identifier=client_id,
                    protocol=aiomqtt.ProtocolVersion.V5,
                    clean_start=False,
                    tls_context=origin.tls,
                    properties=_session_properties(),
                ) as source,
            ):
                await source.subscribe("clients/+/alerts", qos=1)
                log.info("bridging origin -> wss://%s:%s/mqtt", target.host, target.port)
                if ready is not None:
                    ready.set()
                async for message in source.messages:
                    payload = bytes(message.payload)  # type: ignore[arg-type]
                    wanted, refusal = waf.admit(str(message.topic), payload, loop.time())
                    if refusal is not None:
                        metrics.refused.labels(refusal.value).inc()
                        log.warning("WAF refused an alert for %r: %s", wanted, refusal.value)
                        continue
                    await out.publish(f"{INGRESS_TOPIC_PREFIX}{message.topic}", payload, qos=1)
                    metrics.forwarded.inc()
                    if stop.is_set():
                        return
        except aiomqtt.MqttError as error:
            log.warning("bridge connection lost (%s); trying the next node", error)
            index += 1
            await asyncio.sleep(0.5)


def _session_properties() -> Properties:
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600
    return properties
