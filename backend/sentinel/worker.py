"""The ingress worker: ``sentinel.ingress.clients.<id>.alerts`` -> stages -> ``MQTT_ALERTS``
and the MQTT QoS 1 feed (:mod:`backend.sentinel.delivery`).

Workers share the ingress in the NATS queue group
:data:`~backend.sentinel.naming.WORKER_QUEUE` (add processes to scale). Each message is
published to the streams with a ``Nats-Msg-Id`` and retried until stored, so a node loss or
a stream-leader election (6-8 s here) delays alerts but loses and doubles none (DESIGN:
Retention and HA). The id is the client plus a digest of the payload: the origin bridge
resends an unacknowledged QoS 1 alert after a reconnect, and alerts carry their own id
and time, so one body is one alert within the stream's 2-minute duplicate window.

Why a core subscription and not an ingress stream: NATS MQTT acknowledges a QoS 1 publish
without waiting for a stream to store it, so an ingress stream loses what arrives while its
own leader is re-elected (measured: every alert of that window). Held in the worker, they
wait for the new leader instead. What a worker holds when *it* dies is lost; issue 14's
pipeline can move to a per-client partitioned stream if that matters.

Messages a stage quarantines are not delivered (issue 14 keeps them in a quarantine
stream); the chain is :class:`~backend.sentinel.stages.PassThrough` by default.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError
from prometheus_client import CollectorRegistry, Counter

from backend.sentinel.delivery import DUPLICATE_WINDOW_S, Delivery, ensure_qos1_stream
from backend.sentinel.errors import SentinelError
from backend.sentinel.naming import (
    INGRESS_SUBJECTS,
    STREAM,
    STREAM_MAX_AGE_S,
    STREAM_REPLICAS,
    STREAM_SUBJECTS,
    WORKER_QUEUE,
    alerts_subject,
    client_of_ingress,
)
from backend.sentinel.stages import InboundMessage, PassThrough, Stage, run_stages

log = logging.getLogger("backend.sentinel.worker")

#: How much ingress a worker may hold while the stream elects a leader (600 msg/s x 8 s
#: fits many times over).
PENDING_MESSAGES = 1_000_000
PENDING_BYTES = 1024**3


def message_id(client_id: str, payload: bytes) -> str:
    """``Nats-Msg-Id`` of an alert: client id and a SHA-256 of the body (stable on resend)."""
    return f"{client_id}-{hashlib.sha256(payload).hexdigest()[:40]}"


def alerts_stream_config() -> StreamConfig:
    """``MQTT_ALERTS`` exactly as seed 003's config."""
    return StreamConfig(
        name=STREAM,
        subjects=list(STREAM_SUBJECTS),
        retention=RetentionPolicy.LIMITS,
        max_age=float(STREAM_MAX_AGE_S),
        storage=StorageType.FILE,
        num_replicas=STREAM_REPLICAS,
        discard=DiscardPolicy.OLD,
        duplicate_window=DUPLICATE_WINDOW_S,
    )


async def ensure_streams(js: JetStreamContext) -> None:
    """Create ``MQTT_ALERTS``, or bring its config back to the seed's, and the QoS 1 feed's
    stream (idempotent)."""
    config = alerts_stream_config()
    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(config)
    else:
        await js.update_stream(config)
    await ensure_qos1_stream(js)


@dataclass
class WorkerMetrics:
    """Counters of what the worker did (own registry: several per test process)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.messages = Counter(
            "sentinel_worker_messages",
            "Ingress messages by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.retries = Counter(
            "sentinel_worker_publish_retries", "Publishes retried", registry=self.registry
        )


class IngressWorker:
    """Moves ingress to the stream through ``stages``; one instance per process."""

    def __init__(
        self,
        nc: Client,
        stages: Sequence[Stage] = (PassThrough(),),
        *,
        batch: int = 100,
        retry_budget_s: float = 60.0,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream(timeout=5.0)
        self._stages = tuple(stages)
        self._batch = batch
        self.metrics = metrics or WorkerMetrics()
        self._delivery = Delivery(
            self._js, retry_budget_s=retry_budget_s, on_retry=self.metrics.retries.inc
        )

    async def run(self, stop: asyncio.Event, ready: Callable[[], None] | None = None) -> None:
        """Handle ingress in batches until ``stop`` (``ready`` once subscribed)."""
        subscription = await self._nc.subscribe(
            INGRESS_SUBJECTS,
            queue=WORKER_QUEUE,
            pending_msgs_limit=PENDING_MESSAGES,
            pending_bytes_limit=PENDING_BYTES,
        )
        await self._nc.flush()
        if ready is not None:
            ready()
        while not stop.is_set():
            try:
                first = await subscription.next_msg(timeout=0.5)
            except (TimeoutError, NatsTimeout):
                continue
            batch = [first]
            while len(batch) < self._batch and subscription.pending_msgs > 0:
                batch.append(await subscription.next_msg(timeout=1.0))
            await self.handle_batch(batch)
        await subscription.unsubscribe()

    async def handle_batch(self, messages: Sequence[Msg]) -> None:
        """Inspect each message, then publish the delivered ones concurrently (in order)."""
        publishes = []
        for message in messages:
            try:
                client_id = client_of_ingress(message.subject)
            except SentinelError as error:
                log.warning("ingress message dropped: %s", error)
                self.metrics.messages.labels("bad_subject").inc()
                continue
            inbound = InboundMessage(
                client_id=client_id,
                subject=message.subject,
                payload=message.data,
                headers=dict(message.headers or {}),
                received_at=time.time(),
                message_id=message_id(client_id, message.data),
            )
            verdict = run_stages(self._stages, inbound)
            self.metrics.messages.labels(verdict.action.value).inc()
            if verdict.action.delivers:
                publishes.append(
                    self._publish(alerts_subject(client_id), inbound.payload, inbound.message_id)
                )
        results = await asyncio.gather(*publishes)
        lost = results.count(False)
        if lost:
            self.metrics.messages.labels("gave_up").inc(lost)

    async def _publish(self, subject: str, payload: bytes, msg_id: str) -> bool:
        # Both streams, exactly once each: see backend.sentinel.delivery for the why.
        return await self._delivery.deliver(subject, payload, msg_id)
