"""The ingress worker: ``sentinel.ingress.clients.<id>.alerts`` -> stages -> ``MQTT_ALERTS``
and the MQTT QoS 1 feed (:mod:`backend.sentinel.delivery`).

Workers share the ingress by partitions of clients (add processes to scale). A worker has
one connection in the record account (ingress, ``MQTT_ALERTS``, quarantine) and one per
client shard account (the QoS 1 copies: :mod:`backend.sentinel.shards`). Each message is
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

Per-client order across workers: the ingress is partitioned by client
(:mod:`backend.sentinel.partitions`); a worker subscribes to the partitions it owns and
handles one batch at a time, so one client's alerts are judged and stored in arrival order.

Messages a stage quarantines are not delivered: they are stored in the quarantine stream
with their findings (:mod:`backend.sentinel.quarantine`). The chain is
:class:`~backend.sentinel.stages.PassThrough` by default; ``python -m backend.sentinel
worker`` runs the inspection pipeline (:mod:`backend.sentinel.inspection_service`), which
also sees each batch before (``prepare``: Auth DB look-ups, flood admission) and after
(``report``: counters, events, metrics).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError
from prometheus_client import CollectorRegistry, Counter

from backend.sentinel.delivery import DUPLICATE_WINDOW_S, Delivery, ensure_qos1_stream
from backend.sentinel.errors import SentinelError
from backend.sentinel.naming import (
    STREAM,
    STREAM_MAX_AGE_S,
    STREAM_REPLICAS,
    STREAM_SUBJECTS,
    client_of_ingress,
    quarantine_subject,
)
from backend.sentinel.partitions import PARTITIONS, partition_queue, partition_subject
from backend.sentinel.quarantine import ensure_quarantine, quarantine_headers
from backend.sentinel.stages import InboundMessage, PassThrough, Stage, Verdict, run_stages

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
    """Create ``MQTT_ALERTS`` (the seed's config) and the quarantine stream in the record
    account (idempotent)."""
    config = alerts_stream_config()
    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(config)
    else:
        await js.update_stream(config)
    await ensure_quarantine(js)


async def ensure_feeds(feeds: Sequence[JetStreamContext]) -> None:
    """Create (or set the retention of) ``$MQTT_msgs`` in every shard account."""
    for js in feeds:
        await ensure_qos1_stream(js)


@dataclass(frozen=True)
class Judged:
    """One message after the stages: its verdict and whether its stream stored it."""

    message: InboundMessage
    verdict: Verdict
    stored: bool


#: Called with a batch's client ids before its messages are judged (may await I/O).
Prepare = Callable[[Sequence[str]], Awaitable[None]]
#: Says why a message must not even be judged (e.g. its client floods), or None.
Admit = Callable[[InboundMessage], str | None]
#: Called with every judged message of a batch once the publishes are done.
Report = Callable[[Sequence[Judged]], Awaitable[None]]


def all_partitions() -> list[tuple[str, str]]:
    """Every partition's (subject, queue): what a single worker subscribes to."""
    return [(partition_subject(p), partition_queue(p)) for p in range(PARTITIONS)]


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
        self._outcomes: dict[str, Counter] = {}
        self.dropped = Counter(
            "sentinel_worker_dropped",
            "Ingress messages dropped before judging, by reason",
            ["reason"],
            registry=self.registry,
        )

    def outcome(self, name: str) -> None:
        """Count one message's outcome (the labelled child looked up once per name)."""
        child = self._outcomes.get(name)
        if child is None:
            child = self._outcomes[name] = self.messages.labels(name)
        child.inc()


class IngressWorker:
    """Moves ingress to the stream through ``stages``; one instance per process."""

    def __init__(
        self,
        nc: Client,
        stages: Sequence[Stage] = (PassThrough(),),
        *,
        feeds: Sequence[Client],
        batch: int = 100,
        retry_budget_s: float = 60.0,
        metrics: WorkerMetrics | None = None,
        subscriptions: Sequence[tuple[str, str]] | None = None,
        prepare: Prepare | None = None,
        admit: Admit | None = None,
        report: Report | None = None,
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream(timeout=5.0)
        self._stages = tuple(stages)
        self._batch = batch
        self.metrics = metrics or WorkerMetrics()
        #: ``nc`` is in the record account; ``feeds[k]`` in shard account ``k`` (the QoS 1
        #: copies go there, see backend.sentinel.delivery).
        self._delivery = Delivery(
            self._js,
            [feed.jetstream(timeout=5.0) for feed in feeds],
            retry_budget_s=retry_budget_s,
            on_retry=self.metrics.retries.inc,
        )
        #: (subject, queue) pairs: the partitions this worker owns (all of them by default).
        self.subscriptions = list(subscriptions or all_partitions())
        self._prepare = prepare
        self._admit = admit
        self._report = report
        self._inbox: asyncio.Queue[Msg] = asyncio.Queue(PENDING_MESSAGES)

    async def run(self, stop: asyncio.Event, ready: Callable[[], None] | None = None) -> None:
        """Handle ingress in batches until ``stop`` (``ready`` once subscribed).

        Every owned partition is its own subscription; their callbacks (called in order per
        subscription by nats-py) put messages in one inbox, so one client's messages keep
        their order and the batches mix partitions.
        """
        subscriptions = [
            await self._nc.subscribe(
                subject,
                queue=queue,
                cb=self._enqueue,
                pending_msgs_limit=PENDING_MESSAGES,
                pending_bytes_limit=PENDING_BYTES,
            )
            for subject, queue in self.subscriptions
        ]
        await self._nc.flush()
        if ready is not None:
            ready()
        while not stop.is_set():
            try:
                first = await asyncio.wait_for(self._inbox.get(), timeout=0.5)
            except TimeoutError:
                continue
            batch = [first]
            while len(batch) < self._batch and not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
            await self.handle_batch(batch)
        for subscription in subscriptions:
            await subscription.unsubscribe()

    async def _enqueue(self, message: Msg) -> None:
        try:
            self._inbox.put_nowait(message)
        except asyncio.QueueFull:
            self._drop("inbox_full")

    def _drop(self, reason: str, count: int = 1) -> None:
        self.metrics.dropped.labels(reason).inc(count)
        self.metrics.messages.labels("dropped").inc(count)

    async def handle_batch(self, messages: Sequence[Msg]) -> None:
        """Judge each message, then store all of them concurrently (in order): delivered
        ones in ``MQTT_ALERTS``, quarantined ones in the quarantine stream."""
        inbound: list[InboundMessage] = []
        for message in messages:
            try:
                client_id = client_of_ingress(message.subject)
            except SentinelError as error:
                log.warning("ingress message dropped: %s", error)
                self.metrics.messages.labels("bad_subject").inc()
                self.metrics.dropped.labels("bad_subject").inc()
                continue
            inbound.append(
                InboundMessage(
                    client_id=client_id,
                    subject=message.subject,
                    payload=message.data,
                    headers=dict(message.headers or {}),
                    received_at=time.time(),
                    message_id=message_id(client_id, message.data),
                )
            )
        if self._prepare is not None and inbound:
            await self._prepare([m.client_id for m in inbound])
        judged: list[tuple[InboundMessage, Verdict]] = []
        publishes = []
        for item in inbound:
            if self._admit is not None and (reason := self._admit(item)) is not None:
                self._drop(reason)
                continue
            verdict = run_stages(self._stages, item)
            self.metrics.outcome(verdict.action.value)
            judged.append((item, verdict))
            if verdict.action.delivers:
                publishes.append(self._publish(item.client_id, item.payload, item.message_id))
            else:
                publishes.append(
                    self._quarantine(
                        quarantine_subject(item.client_id),
                        item.payload,
                        quarantine_headers(
                            item.client_id, item.message_id, verdict.findings, item.received_at
                        ),
                    )
                )
        results = await asyncio.gather(*publishes)
        lost = results.count(False)
        if lost:
            self.metrics.messages.labels("gave_up").inc(lost)
        if self._report is not None and judged:
            await self._report(
                [Judged(m, v, ok) for (m, v), ok in zip(judged, results, strict=True)]
            )

    async def _publish(self, client_id: str, payload: bytes, msg_id: str) -> bool:
        # Both streams, exactly once each: see backend.sentinel.delivery for the why.
        return await self._delivery.deliver(client_id, payload, msg_id)

    async def _quarantine(self, subject: str, payload: bytes, headers: dict[str, str]) -> bool:
        # Only the quarantine stream: a quarantined alert must never reach the QoS 1 feed.
        return await self._delivery.store(subject, payload, headers)
