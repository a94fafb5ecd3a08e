"""The MQTT v5 ingest consumer: connect, subscribe, hand batches on, acknowledge after.

Transport only; what a message means is :class:`~backend.ingest.pipeline.IngestPipeline`'s.

* One persistent session (fixed client id, ``clean_start=False`` *and* a
  SessionExpiryInterval — DESIGN.md, aiomqtt pitfalls), shared subscriptions
  ``$share/<group>/<filter>`` at QoS 1 so several workers can split the load.
* **Acknowledge after processing.** aiomqtt (like paho by default) PUBACKs on receipt, so a
  crash between receipt and processing would lose the message. We reach the paho client
  under aiomqtt (as aiomqtt issue 345 shows), switch on paho's manual acks and PUBACK each
  QoS 1 message only after its batch landed in the store and the streams. The broker's
  Receive Maximum bounds how many unacknowledged messages we hold.
* paho's ``on_message`` is replaced by an append to a list: the hot path then drains whole
  batches instead of paying a task and a queue hop per message.
* Reconnects with capped exponential backoff; never dies on a broker outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from dataclasses import dataclass
from typing import Any, Protocol

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError

from backend.contract.topics import UPSTREAM_FILTERS
from backend.errors import Unavailable
from backend.ingest import paho_speedups
from backend.metrics import BackendMetrics
from backend.retry import Backoff
from backend.settings import Settings

log = logging.getLogger(__name__)

#: A dependency of the batch write is down (Redis, the database): retry, do not alarm.
DEPENDENCY_ERRORS: tuple[type[BaseException], ...] = (RedisError, DBAPIError, OSError)

#: MQTT v5 user property the load tool sets; copied verbatim into stream entries.
TRACE_PROPERTY = "aurora-trace"


@dataclass(slots=True)
class RawMessage:
    """One received MQTT message, before decoding."""

    topic: str
    payload: bytes
    qos: int
    mid: int
    dup: bool
    trace: str | None

    @classmethod
    def from_paho(cls, message: paho.MQTTMessage) -> RawMessage:
        """Copy what the pipeline needs out of paho's message."""
        trace = None
        properties = getattr(message, "properties", None)
        user_properties = getattr(properties, "UserProperty", None) if properties else None
        if user_properties:
            for name, value in user_properties:
                if name == TRACE_PROPERTY:
                    trace = value
                    break
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = message._topic.decode("utf-8", "replace")
        return cls(
            topic, bytes(message.payload), message.qos, message.mid, bool(message.dup), trace
        )


class BatchProcessor(Protocol):
    """Handles a batch; returns only once every side effect has landed."""

    async def process(self, batch: list[RawMessage]) -> None:
        """Process ``batch``; raise to make the consumer reconnect without acking."""
        ...

    def acknowledged(self) -> None:
        """The PUBACKs of the batch processed last were written to the socket."""
        ...


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The client TLS context of the backend (mTLS with its own certificate)."""
    if not settings.mqtt_tls:
        return None
    context = ssl.create_default_context(cafile=str(settings.mqtt_ca) if settings.mqtt_ca else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = settings.mqtt_tls_check_hostname
    if settings.mqtt_cert is not None:
        context.load_cert_chain(
            str(settings.mqtt_cert), str(settings.mqtt_key) if settings.mqtt_key else None
        )
    return context


def _code_value(code: Any) -> int:
    """A SUBACK reason code as an int (paho gives ReasonCode objects in v5, ints in v3)."""
    return int(getattr(code, "value", code))


class MqttIngest:
    """The site's MQTT connection: ingest consumer and command publisher."""

    def __init__(self, settings: Settings, metrics: BackendMetrics) -> None:
        self._settings = settings
        self._metrics = metrics
        paho_speedups.install()
        self._processor: BatchProcessor | None = None
        self._client: aiomqtt.Client | None = None
        self._pending: list[paho.MQTTMessage] = []
        self._wakeup = asyncio.Event()
        self._connected = False
        self.last_error: str | None = "not connected yet"

    def attach(self, processor: BatchProcessor) -> None:
        """Set the pipeline that handles batches (before :meth:`run`)."""
        self._processor = processor

    @property
    def connected(self) -> bool:
        """True while connected and subscribed."""
        return self._connected

    def _make_client(self) -> aiomqtt.Client:
        settings = self._settings
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = settings.mqtt_session_expiry_s
        properties.ReceiveMaximum = settings.mqtt_receive_maximum
        client = aiomqtt.Client(
            settings.mqtt_host,
            settings.mqtt_port,
            identifier=settings.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=properties,
            tls_context=tls_context(settings),
            keepalive=30,
            timeout=10,
            # paho leaves Nagle on: a lone PUBACK or unlock command would wait for the
            # peer's delayed ACK (~40 ms) — the whole badge -> unlock budget.
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        inner: paho.Client = client._client
        # Set before CONNECT: a persistent session delivers queued messages right away.
        inner.manual_ack_set(True)
        if not log.isEnabledFor(logging.DEBUG):
            # paho logs every packet in and out; at INFO that is pure hot-path overhead.
            inner.disable_logger()
        inner.on_message = self._on_message
        return client

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        self._pending.append(message)
        self._wakeup.set()

    async def run(self) -> None:
        """Consume until cancelled, reconnecting with backoff."""
        max_s = self._settings.mqtt_reconnect_max_s
        backoff = Backoff(initial_s=min(0.2, max_s), max_s=max_s, jitter=0.0)
        delays = backoff.delays()
        while True:
            try:
                client = self._make_client()
                async with client:
                    await self._subscribe(client)
                    self._client = client
                    self._connected = True
                    self.last_error = None
                    self._metrics.mqtt_connected.set(1)
                    self._metrics.mqtt_reconnects.inc()
                    log.info(
                        "ingest connected to %s:%s as %s",
                        self._settings.mqtt_host,
                        self._settings.mqtt_port,
                        self._settings.client_id,
                    )
                    delays = backoff.delays()
                    await self._drain(client)
            except (aiomqtt.MqttError, OSError, ssl.SSLError) as error:
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("ingest MQTT connection lost or refused: %s", self.last_error)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # Redis or the database failed under a batch: nothing of it was acked, so
                # reconnecting makes the broker redeliver it once the dependency is back.
                self.last_error = f"{type(error).__name__}: {error}"
                if isinstance(error, DEPENDENCY_ERRORS):
                    # An outage, not a bug: one line per retry, no traceback.
                    log.warning(
                        "ingest batch not stored (%s); reconnecting to get a redelivery",
                        self.last_error,
                    )
                else:
                    log.exception("ingest batch failed; reconnecting to get a redelivery")
            finally:
                self._connected = False
                self._client = None
                self._metrics.mqtt_connected.set(0)
                # Unacknowledged messages of the old connection come again on the new one.
                self._pending.clear()
            await asyncio.sleep(next(delays))

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        group = self._settings.mqtt_share_group
        topics = [(f"$share/{group}/{f}", SubscribeOptions(qos=1)) for f in UPSTREAM_FILTERS]
        codes = await client.subscribe(topics)
        refused = [
            (topic, code)
            for (topic, _), code in zip(topics, codes, strict=False)
            if _code_value(code) >= 0x80
        ]
        if refused:
            raise aiomqtt.MqttError(f"broker refused subscriptions: {refused}")

    async def _drain(self, client: aiomqtt.Client) -> None:
        disconnected: asyncio.Future[None] = client._disconnected
        inner: paho.Client = client._client
        batch_max = self._settings.ingest_batch_max
        while True:
            if not self._pending:
                self._wakeup.clear()
                waiter: asyncio.Future[Any] = asyncio.ensure_future(self._wakeup.wait())
                watched: set[asyncio.Future[Any]] = {waiter, disconnected}
                done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                if disconnected in done:
                    waiter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await waiter
                    error = disconnected.exception()
                    raise aiomqtt.MqttError(f"disconnected: {error}")
                continue
            self._read_buffered(inner, batch_max)
            raw = self._pending[:batch_max]
            del self._pending[:batch_max]
            batch = [RawMessage.from_paho(message) for message in raw]
            if self._processor is not None:
                await self._processor.process(batch)
            self._metrics.batch_size.observe(len(batch))
            if self._settings.ingest_ack_delay_s > 0:
                await asyncio.sleep(self._settings.ingest_ack_delay_s)
            self._ack(inner, raw)
            if self._processor is not None:
                self._processor.acknowledged()
            # Let the socket callbacks run between batches, so acks go out promptly.
            await asyncio.sleep(0)

    @staticmethod
    def _ack(inner: paho.Client, raw: list[paho.MQTTMessage]) -> None:
        """PUBACK a processed batch in order, corked into as few TCP segments as possible.

        TCP_NODELAY keeps a lone unlock command or PUBACK from waiting on Nagle; corking
        the socket around a batch of acks gives back what Nagle gave the hot path (one
        segment for hundreds of PUBACKs instead of one each).
        """
        sock: Any = inner.socket()
        cork = getattr(socket, "TCP_CORK", None) if len(raw) > 1 else None
        if sock is not None and cork is not None:
            sock.setsockopt(socket.IPPROTO_TCP, cork, 1)
        try:
            for message in raw:
                if message.qos > 0:
                    inner.ack(message.mid, message.qos)
            inner.loop_write()
        except Exception as error:  # a broken socket: reconnect, the broker redelivers
            raise aiomqtt.MqttError(f"acknowledging failed: {error}") from error
        finally:
            if sock is not None and cork is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, cork, 0)

    def _read_buffered(self, inner: paho.Client, batch_max: int) -> None:
        """Read every packet already on the socket before processing a batch.

        aiomqtt's reader callback takes one packet per event-loop turn (paho's
        ``loop_read`` reads a single packet), which would make every batch one message
        long. ``loop_read`` on the non-blocking socket returns at once when nothing is
        buffered; a read error ends the connection through paho's own disconnect path.
        """
        while len(self._pending) < batch_max:
            before = len(self._pending)
            try:
                rc = inner.loop_read()
            except Exception as error:  # same policy as aiomqtt's reader callback
                raise aiomqtt.MqttError(f"read failed: {error}") from error
            if rc != paho.MQTT_ERR_SUCCESS or len(self._pending) == before:
                return

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish a command or challenge; waits for the PUBACK at QoS 1."""
        client = self._client
        if client is None or not self._connected:
            raise Unavailable(
                "the backend is not connected to the MQTT broker; retry when /healthz is green",
                {"mqtt": self.last_error},
            )
        try:
            await client.publish(topic, payload, qos=qos, timeout=5)
        except aiomqtt.MqttError as error:
            raise Unavailable(f"publishing to {topic} failed: {error}") from error
