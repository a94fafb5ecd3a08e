"""Prometheus metrics of one backend instance, on a per-app registry.

A per-app :class:`CollectorRegistry` (not the global default) lets two sites live in one
process without "Duplicated timeseries" errors.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "BackendMetrics"]

# Handler latencies are small (the hot path is microseconds per message, badge ~1 ms).
_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


class BackendMetrics:
    """Every metric the backend exports; one instance per app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.messages = self._counter(
            "aurora_ingest_messages",
            "Upstream MQTT messages processed, by message kind",
            "kind",
        )
        self.rejections = self._counter(
            "aurora_ingest_rejected_messages",
            "Messages refused by the contract, by reason",
            "reason",
        )
        self.handler_errors = self._counter(
            "aurora_ingest_handler_errors",
            "Unexpected errors inside a message handler (message acked, consumer went on)",
            "kind",
        )
        self.trace_rejections = self._counter(
            "aurora_ingest_trace_rejected",
            "aurora-trace user properties dropped (not <client>:<seq>:<sent_ns> or too long)",
        )
        self.duplicates = self._counter(
            "aurora_ingest_duplicates",
            "Redelivered messages recognised as already processed and only acknowledged",
        )
        self.dead_lettered = self._counter(
            "aurora_ingest_dead_lettered",
            "Messages whose processing failed on every delivery, acknowledged into "
            "aurora:cps:deadletter",
        )
        self.handler_latency = self._histogram(
            "aurora_ingest_handler_seconds",
            "Time to handle one message (per-batch average on the telemetry hot path)",
            _LATENCY_BUCKETS,
            "kind",
        )
        self.batch_size = self._histogram(
            "aurora_ingest_batch_size",
            "Messages per processed (and acknowledged) batch",
            (1, 2, 5, 10, 50, 100, 250, 500, 1000, 2500),
        )
        self.commands_sent = self._counter(
            "aurora_commands_sent",
            "Commands published to devices, by verb",
            "verb",
        )
        self.alerts_raised = self._counter(
            "aurora_alerts_raised",
            "Alerts created at this site, by severity",
            "severity",
        )
        self.mqtt_connected = self._gauge(
            "aurora_ingest_mqtt_connected",
            "1 while the ingest consumer is connected to the broker",
        )
        self.mqtt_reconnects = self._counter(
            "aurora_ingest_mqtt_connects",
            "Successful connections of the ingest consumer to the broker",
        )

    # Every metric on this app's registry (never the global default, see above).
    def _counter(self, name: str, documentation: str, *labels: str) -> Counter:
        return Counter(name, documentation, labels, registry=self.registry)

    def _gauge(self, name: str, documentation: str, *labels: str) -> Gauge:
        return Gauge(name, documentation, labels, registry=self.registry)

    def _histogram(
        self, name: str, documentation: str, buckets: Sequence[float], *labels: str
    ) -> Histogram:
        return Histogram(name, documentation, labels, buckets=buckets, registry=self.registry)

    def render(self) -> bytes:
        """The text exposition of every metric."""
        return generate_latest(self.registry)
