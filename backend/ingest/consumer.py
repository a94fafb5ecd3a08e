"""The MQTT v5 ingest consumer: connect, subscribe, hand batches on, acknowledge after.

Transport only; what a message means is :class:`~backend.ingest.pipeline.IngestPipeline`'s.

* One persistent session (fixed client id, ``clean_start=False`` *and* a
  SessionExpiryInterval — DESIGN.md), shared subscriptions ``$share/<group>/<filter>`` at
  QoS 1 so several workers split the load.
* **Acknowledge after processing**: the connection runs with manual acks
  (:class:`~backend.mqtt.MqttClient`), and each QoS 1 message is PUBACKed only after its
  batch landed in the store and the streams. The Receive Maximum we announce bounds how
  many unacknowledged messages the broker sends ahead.
* **Batches**: :meth:`~backend.mqtt.MqttClient.receive` hands over every message already
  read, so a busy queue is worked in batches of up to ``ingest_batch_max``.
* Reconnects with capped exponential backoff; never dies on a broker outage. The client's
  socket belongs to its asyncio transport, closed once, in order (issue 11.8).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from dataclasses import dataclass
from typing import Protocol

from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError

from backend.contract.topics import UPSTREAM_FILTERS
from backend.errors import Unavailable
from backend.metrics import BackendMetrics
from backend.mqtt import (
    FAILURE,
    ConnectFailed,
    ConnectOptions,
    MqttClient,
    MqttError,
    Publish,
    client_tls_context,
)
from backend.retry import Backoff
from backend.settings import Settings

log = logging.getLogger(__name__)

#: A dependency of the batch write is down (Redis, the database): retry, do not alarm.
DEPENDENCY_ERRORS: tuple[type[BaseException], ...] = (RedisError, DBAPIError, OSError)

#: The filter extra ingest workers share with the main one (the telemetry hot path).
TELEMETRY_FILTER = "aurora/sensors/+/telemetry"
assert TELEMETRY_FILTER in UPSTREAM_FILTERS

#: Allocations between young-generation collections (CPython's default: 700). A batch of
#: 1,000 readings allocates tens of thousands of short-lived objects; collecting every 700
#: walked each batch's live objects dozens of times.
GC_YOUNG_THRESHOLD = 20_000

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
    def from_publish(cls, message: Publish) -> RawMessage:
        """What the pipeline needs of a received PUBLISH."""
        trace = None
        for name, value in message.user_properties:
            if name == TRACE_PROPERTY:
                trace = value
                break
        return cls(
            message.topic, message.payload, message.qos, message.packet_id, message.dup, trace
        )


class BatchProcessor(Protocol):
    """Handles a batch; returns only once every side effect has landed."""

    async def process(self, batch: list[RawMessage]) -> None:
        """Process ``batch``; raise to make the consumer reconnect without acking."""
        ...

    def acknowledged(self) -> None:
        """The PUBACKs of the batch processed last were written to the socket."""
        ...


def connect_options(settings: Settings) -> ConnectOptions:
    """The backend's MQTT session: persistent, manual acks, its own client certificate."""
    tls = None
    if settings.mqtt_tls:
        tls = client_tls_context(
            settings.mqtt_ca,
            settings.mqtt_cert,
            settings.mqtt_key,
            check_hostname=settings.mqtt_tls_check_hostname,
        )
    return ConnectOptions(
        host=settings.mqtt_host,
        port=settings.mqtt_port,
        client_id=settings.client_id,
        tls=tls,
        keepalive_s=30,
        clean_start=False,
        session_expiry_s=settings.mqtt_session_expiry_s,
        receive_maximum=settings.mqtt_receive_maximum,
        manual_ack=True,
        timeout_s=10.0,
        # One connection carrying the whole site: the event loop's (uvloop's compiled) SSL
        # transport; its 256 KiB buffer per connection matters only for fleets.
        tls_over_bio=False,
    )


def settle_heap() -> None:
    """Move what start-up built (modules, models, the ORM, settings) out of the garbage
    collector's sight, and let it run less often.

    A drain allocates a few dozen objects per reading; each full collection walked the
    ~170,000 start-up objects again (0.3 s each, five per 50,000 readings: ~40 % of a
    profiled drain). Frozen objects are never collected, which is what they are for.
    """
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


class MqttIngest:
    """The site's MQTT connection: ingest consumer and command publisher."""

    def __init__(self, settings: Settings, metrics: BackendMetrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._processor: BatchProcessor | None = None
        self._client: MqttClient | None = None
        self.last_error: str | None = "not connected yet"

    def attach(self, processor: BatchProcessor) -> None:
        """Set the pipeline that handles batches (before :meth:`run`)."""
        self._processor = processor

    @property
    def connected(self) -> bool:
        """True while connected and subscribed."""
        return self._client is not None and self._client.is_connected

    async def run(self) -> None:
        """Consume until cancelled, reconnecting with backoff."""
        settle_heap()
        options = connect_options(self._settings)
        max_s = self._settings.mqtt_reconnect_max_s
        backoff = Backoff(initial_s=min(0.2, max_s), max_s=max_s, jitter=0.0)
        delays = backoff.delays()
        while True:
            try:
                client = await MqttClient.connect(options)
                try:
                    await self._subscribe(client)
                    self._client = client
                    self.last_error = None
                    self._metrics.mqtt_connected.set(1)
                    self._metrics.mqtt_reconnects.inc()
                    log.info(
                        "ingest connected to %s:%s as %s",
                        options.host,
                        options.port,
                        options.client_id,
                    )
                    delays = backoff.delays()
                    await self._drain(client)
                finally:
                    self._client = None
                    self._metrics.mqtt_connected.set(0)
                    # Closed here, in order, whatever ended the connection: the broker
                    # redelivers what was not acknowledged on the next one.
                    await asyncio.shield(client.aclose())
            except MqttError as error:
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
            await asyncio.sleep(next(delays))

    async def _subscribe(self, client: MqttClient) -> None:
        group = self._settings.mqtt_share_group
        filters = UPSTREAM_FILTERS
        if self._settings.ingest_worker_index:
            # Extra workers share the hot path only (backend/ingest/workers.py).
            filters = (TELEMETRY_FILTER,)
        topics = [(f"$share/{group}/{f}", 1) for f in filters]
        codes = await client.subscribe(topics)
        refused = [(t, c) for (t, _), c in zip(topics, codes, strict=False) if c >= FAILURE]
        if refused:
            raise ConnectFailed(f"broker refused subscriptions: {refused}")

    async def _drain(self, client: MqttClient) -> None:
        batch_max = self._settings.ingest_batch_max
        ack_delay_s = self._settings.ingest_ack_delay_s
        processor = self._processor
        while True:
            received = await client.receive(batch_max)
            batch = [RawMessage.from_publish(message) for message in received]
            if processor is not None:
                await processor.process(batch)
            self._metrics.batch_size.observe(len(batch))
            if ack_delay_s > 0:
                await asyncio.sleep(ack_delay_s)
            # One write for the whole batch's PUBACKs, in the order received.
            client.ack(received)
            if processor is not None:
                processor.acknowledged()

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish a command or challenge; waits for the PUBACK at QoS 1."""
        client = self._client
        if client is None or not client.is_connected:
            raise Unavailable(
                "the backend is not connected to the MQTT broker; retry when /healthz is green",
                {"mqtt": self.last_error},
            )
        try:
            reason = await client.publish(topic, payload, qos=qos, timeout_s=5)
        except MqttError as error:
            raise Unavailable(f"publishing to {topic} failed: {error}") from error
        if reason >= FAILURE:
            raise Unavailable(f"the broker refused the publish to {topic}: reason {reason}")
