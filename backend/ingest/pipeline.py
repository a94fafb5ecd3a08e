"""What the backend does with each upstream message (seed 001, "Backend behaviour").

:class:`IngestPipeline` takes a batch from the consumer and returns once every side effect
landed; the consumer acknowledges only then. Per message:

1. a QoS 1 redelivery (DUP flag) whose marker says it was processed is only acknowledged;
2. :func:`~backend.contract.decode_upstream` first — a :class:`ContractViolation` is counted
   by reason and audited as ``rejected_message``; the batch goes on;
3. one handler per kind (telemetry, the hot path, here; the others in
   :mod:`backend.ingest.handlers`); anything unexpected in a handler is logged, counted and audited
   (``handler_error``) and the batch goes on — except an outage of Redis or the database,
   which propagates so the consumer reconnects and the broker redelivers.

A batch failing on anything else (a bug a message can trigger: e.g. ``RecursionError`` in
a decoder) is worked again message by message; the message at fault has its failed
deliveries counted in Redis and, past ``ingest_max_deliveries``, is acknowledged into
``aurora:cps:deadletter`` with the reason (audited ``dead_lettered``, counted in
``aurora_ingest_dead_lettered_total``) so it never blocks the queue (issue 11.1).

Stream entries of the batch and the "processed" markers of its QoS 1 messages are written in
one atomic Lua call, so a redelivery after a crash is recognised and not counted twice.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable
from datetime import datetime
from types import MappingProxyType
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, OperationalError

from backend.alerts import AlertService
from backend.attestation import AttestationService
from backend.bus import (
    AUDIT_STREAM,
    DEADLETTER_STREAM,
    TELEMETRY_STREAM,
    StreamBus,
    StreamEntry,
)
from backend.contract import (
    ContractViolation,
    MessageKind,
    Severity,
    TelemetryMessage,
    Topic,
    decode_upstream,
)
from backend.contract.messages import now_rfc3339
from backend.contract.trace import valid_trace
from backend.ingest.consumer import RawMessage
from backend.ingest.decisions import (
    check_reading,
)
from backend.ingest.handlers import KindHandlers, Publisher
from backend.ingest.registry import DeviceRegistry
from backend.logs import log_fields
from backend.metrics import BackendMetrics
from backend.settings import Settings
from backend.store import TrustStatus, utcnow

log = logging.getLogger(__name__)

#: Errors that mean "a dependency is down", not "this message is bad": never acked.
INFRA_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OperationalError,
    DBAPIError,
    OSError,
)


_NO_EXTRA: MappingProxyType[str, str] = MappingProxyType({})

#: Failed-delivery counts are forgotten a day after the last failure.
ATTEMPTS_TTL_S = 86_400


class InjectedFault(RuntimeError):
    """Raised for a payload carrying ``ingest_fault_marker`` (dead-letter tests only)."""


def message_marker(message: RawMessage) -> str:
    """Redelivery marker: packet id plus a digest of topic and payload.

    The broker resends an unacknowledged QoS 1 message with its original packet id and the
    DUP flag (MQTT v5, 4.4); the digest keeps a reused packet id from matching another
    message.
    """
    digest = hashlib.blake2b(message.topic.encode() + b"\0" + message.payload, digest_size=8)
    return f"{message.mid}:{digest.hexdigest()}"


class IngestPipeline:
    """Decodes, handles and records batches of upstream messages."""

    def __init__(  # noqa: PLR0917 - explicit components, no hidden singletons
        self,
        settings: Settings,
        bus: StreamBus,
        registry: DeviceRegistry,
        alerts: AlertService,
        attestation: AttestationService,
        metrics: BackendMetrics,
        publish: Publisher,
    ) -> None:
        self._settings = settings
        self._bus = bus
        self._registry = registry
        self._alerts = alerts
        self._metrics = metrics
        self._handlers = KindHandlers(
            settings,
            registry.sessionmaker,
            registry,
            alerts,
            attestation,
            metrics,
            publish,
            self.audit_entry,
        )
        #: Publish a lock verb to a device (the REST API's commands use it too).
        self.send_command = self._handlers.send_command
        self._thresholds = dict(settings.telemetry_thresholds)
        self.marker_key = f"aurora:ingest:processed:{settings.client_id}"
        #: Failed deliveries per redelivery marker (dead-letter bookkeeping).
        self.attempts_key = f"aurora:ingest:attempts:{settings.client_id}"
        fault = settings.ingest_fault_marker
        self._fault_marker = fault.encode() if fault else None
        #: Markers whose PUBACKs went out: removed from Redis with the next batch.
        self._acked_markers: list[str] = []
        #: Markers of the batch processed last, until the consumer confirms its acks.
        self._unconfirmed: list[str] = []
        # Bound once: the hot path avoids label lookups per message.
        self._count = {kind: metrics.messages.labels(kind.value) for kind in MessageKind}
        self._latency = {kind: metrics.handler_latency.labels(kind.value) for kind in MessageKind}

    async def process(self, batch: list[RawMessage]) -> None:
        """Handle ``batch``; returns when its entries and markers are in Redis.

        A batch that fails for any reason but an outage is worked again one message at a
        time, so the message at fault is found; it is counted a failed delivery, and past
        ``ingest_max_deliveries`` acknowledged into the dead-letter stream (issue 11.1).
        Until then the error propagates: the consumer reconnects, the broker redelivers.
        """
        try:
            markers = await self._process_batch(batch)
        except INFRA_ERRORS:
            raise
        except Exception as error:
            if len(batch) == 1 and batch[0].qos == 0:
                markers = await self._dead_letter_or_raise(batch[0], error)
            else:
                log.warning(
                    "batch of %d failed (%r); isolating the message at fault", len(batch), error
                )
                markers = []
                for message in batch:
                    try:
                        markers += await self._process_batch([message])
                    except INFRA_ERRORS:
                        raise
                    except Exception as single_error:
                        markers += await self._dead_letter_or_raise(message, single_error)
        self._unconfirmed = markers

    async def _dead_letter_or_raise(self, message: RawMessage, error: Exception) -> list[str]:
        """Count a failed delivery of ``message``; dead-letter it past the limit, else raise.

        The count lives in Redis (a hash per client id, keyed by the redelivery marker),
        so it survives the reconnect that brings the redelivery and a backend restart. A
        QoS 0 message is never redelivered: it is dead-lettered at once.
        """
        marker = message_marker(message)
        deliveries = 1
        if message.qos > 0:
            redis = self._bus.redis
            deliveries = int(await redis.hincrby(self.attempts_key, marker, 1))
            await redis.expire(self.attempts_key, ATTEMPTS_TTL_S)
        limit = self._settings.ingest_max_deliveries
        if message.qos > 0 and deliveries < limit:
            log.warning(
                "message on %r failed on delivery %d of %d: %r",
                message.topic[:200],
                deliveries,
                limit,
                error,
            )
            raise error
        reason = f"{type(error).__name__}: {error}"[:300]
        log.error(
            "dead-lettering message on %r after %d failed deliveries: %s",
            message.topic[:200],
            deliveries,
            reason,
        )
        data = {
            "topic": message.topic[:300],
            "reason": reason,
            "deliveries": deliveries,
            "qos": message.qos,
            "payload": self._excerpt(message.payload),
            "payload_bytes": len(message.payload),
        }
        entries = [
            StreamEntry(DEADLETTER_STREAM, "dead_letter", dict(data), message.trace),
            self.audit_entry("dead_lettered", data, message.trace),
        ]
        markers = [marker] if message.qos > 0 else []
        await self._bus.add_many(entries, set_key=self.marker_key, set_add=markers)
        if message.qos > 0:
            await self._bus.redis.hdel(self.attempts_key, marker)
        self._metrics.dead_lettered.inc()
        return markers

    async def _process_batch(self, batch: list[RawMessage]) -> list[str]:
        """Handle ``batch`` and write its entries and markers; the markers written."""
        entries: list[StreamEntry] = []
        markers: list[str] = []
        already = await self._already_processed(batch)
        telemetry_n = 0
        telemetry_start = time.perf_counter()
        # One clock read per batch for last_seen: a batch is milliseconds of traffic.
        now = utcnow()
        fault = self._fault_marker
        for message in batch:
            if message.trace is not None and not valid_trace(message.trace):
                # Test metadata from an untrusted sender: drop it, keep the reading.
                self._metrics.trace_rejections.inc()
                message.trace = None
            marker = message_marker(message) if message.qos > 0 else None
            if marker is not None and marker in already:
                self._metrics.duplicates.inc()
                # Acked with this batch; its marker can go once that ack is out.
                markers.append(marker)
                continue
            if fault is not None and fault in message.payload:
                raise InjectedFault(f"fault marker in the payload on {message.topic}")
            try:
                topic, decoded = decode_upstream(message.topic, message.payload)
            except ContractViolation as violation:
                self._reject(message, violation, entries)
            else:
                if isinstance(decoded, TelemetryMessage):
                    # The hot path: synchronous, no per-message await or row write.
                    telemetry_n += 1
                    anomaly = self._telemetry(decoded, message, entries, now)
                    if anomaly is not None:
                        await self._guarded(topic, message, entries, anomaly)
                else:
                    await self._guarded(
                        topic,
                        message,
                        entries,
                        self._handlers.dispatch(topic, decoded, message, entries),
                    )
            if marker is not None:
                markers.append(marker)
        if telemetry_n:
            self._count[MessageKind.TELEMETRY].inc(telemetry_n)
            per_message = (time.perf_counter() - telemetry_start) / len(batch)
            self._latency[MessageKind.TELEMETRY].observe(per_message)
        await self._bus.add_many(
            entries, set_key=self.marker_key, set_add=markers, set_remove=self._acked_markers
        )
        self._acked_markers = []
        return markers

    def acknowledged(self) -> None:
        """The consumer sent the PUBACKs of the last batch: its markers may go next time.

        Markers of a batch whose acks never went out (the connection dropped) stay, so its
        redelivery is still recognised however the broker splits it into batches.
        """
        self._acked_markers.extend(self._unconfirmed)
        self._unconfirmed = []

    async def _already_processed(self, batch: list[RawMessage]) -> set[str]:
        redelivered = [message_marker(m) for m in batch if m.dup and m.qos > 0]
        if not redelivered:
            return set()
        flags = await self._bus.redis.smismember(self.marker_key, redelivered)
        return {marker for marker, flag in zip(redelivered, flags, strict=True) if flag}

    async def _guarded(
        self,
        topic: Topic,
        message: RawMessage,
        entries: list[StreamEntry],
        work: Awaitable[object],
    ) -> None:
        start = time.perf_counter()
        try:
            await work
        except INFRA_ERRORS:
            raise
        except Exception as error:
            log.exception(
                "handler for %s failed",
                message.topic,
                extra=log_fields(device_id=topic.device_id, trace_id=message.trace),
            )
            self._metrics.handler_errors.labels(topic.kind.value).inc()
            entries.append(
                self.audit_entry(
                    "handler_error",
                    {
                        "topic": message.topic,
                        "device_id": topic.device_id,
                        "error": f"{type(error).__name__}: {error}"[:300],
                        "payload": self._excerpt(message.payload),
                    },
                    message.trace,
                )
            )
        finally:
            if topic.kind is not MessageKind.TELEMETRY:
                self._count[topic.kind].inc()
                self._latency[topic.kind].observe(time.perf_counter() - start)

    # -- helpers -------------------------------------------------------------------------

    def audit_entry(self, kind: str, data: dict[str, Any], trace: str | None = None) -> StreamEntry:
        """An ``aurora:audit`` entry of ``kind`` stamped with the site and the time."""
        data.setdefault("site_id", self._settings.site_id)
        data.setdefault("at", now_rfc3339())
        return StreamEntry(AUDIT_STREAM, kind, data, trace)

    def _excerpt(self, payload: bytes) -> str:
        limit = self._settings.audit_excerpt_bytes
        text = payload[:limit].decode("utf-8", "replace")
        return text + ("..." if len(payload) > limit else "")

    def _reject(
        self, message: RawMessage, violation: ContractViolation, entries: list[StreamEntry]
    ) -> None:
        self._metrics.rejections.labels(violation.reason.value).inc()
        parts = message.topic.split("/")
        label = parts[2] if len(parts) == 4 else None
        log.info(
            "rejected message on %r: %s",
            message.topic[:200],
            violation.one_line(),
            extra=log_fields(device_id=label[:80] if label else None, trace_id=message.trace),
        )
        entries.append(
            self.audit_entry(
                "rejected_message",
                {
                    "topic": message.topic[:300],
                    "device_id": label[:80] if label else None,
                    "reason": violation.reason.value,
                    "field": violation.field,
                    "detail": violation.detail[:300],
                    "payload": self._excerpt(message.payload),
                },
                message.trace,
            )
        )

    # -- telemetry: the hot path ---------------------------------------------------------

    def _telemetry(
        self,
        reading: TelemetryMessage,
        message: RawMessage,
        entries: list[StreamEntry],
        now: datetime,
    ) -> Awaitable[object] | None:
        self._registry.touch(reading.device_id, now)
        # pydantic's serializer: compact JSON in field order, cheaper than json.dumps.
        payload = reading.model_dump_json()
        trace = message.trace
        # The shared empty ``extra`` spares a dict per entry (two entries per reading).
        entries.append(StreamEntry(TELEMETRY_STREAM, "telemetry", payload, trace, _NO_EXTRA))
        entries.append(StreamEntry(AUDIT_STREAM, "telemetry", payload, trace, _NO_EXTRA))
        anomaly = check_reading(self._thresholds, reading)
        if anomaly is None:
            return None
        return self._alerts.raise_alert(
            "telemetry_anomaly",
            Severity.MEDIUM,
            f"{reading.metric} out of range on {reading.device_id}",
            description=anomaly.describe(),
            device_id=reading.device_id,
            details={
                "metric": reading.metric,
                "value": reading.value,
                "unit": reading.unit,
                "low": anomaly.low,
                "high": anomaly.high,
            },
            trace=message.trace,
        )


__all__ = ["INFRA_ERRORS", "IngestPipeline", "InjectedFault", "TrustStatus", "message_marker"]
