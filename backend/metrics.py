"""Prometheus metrics of one backend instance, on a per-app registry.

A per-app :class:`CollectorRegistry` (not the global default) lets two sites live in one
process without "Duplicated timeseries" errors.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "BackendMetrics"]

# Handler latencies are small (the hot path is microseconds per message, badge ~1 ms).
_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


class BackendMetrics:
    """Every metric the backend exports; one instance per app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.messages = Counter(
            "aurora_ingest_messages",
            "Upstream MQTT messages processed, by message kind",
            ["kind"],
            registry=self.registry,
        )
        self.rejections = Counter(
            "aurora_ingest_rejected_messages",
            "Messages refused by the contract, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.handler_errors = Counter(
            "aurora_ingest_handler_errors",
            "Unexpected errors inside a message handler (message acked, consumer went on)",
            ["kind"],
            registry=self.registry,
        )
        self.trace_rejections = Counter(
            "aurora_ingest_trace_rejected",
            "aurora-trace user properties dropped (not <client>:<seq>:<sent_ns> or too long)",
            registry=self.registry,
        )
        self.duplicates = Counter(
            "aurora_ingest_duplicates",
            "Redelivered messages recognised as already processed and only acknowledged",
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "aurora_ingest_dead_lettered",
            "Messages whose processing failed on every delivery, acknowledged into "
            "aurora:cps:deadletter",
            registry=self.registry,
        )
        self.handler_latency = Histogram(
            "aurora_ingest_handler_seconds",
            "Time to handle one message (per-batch average on the telemetry hot path)",
            ["kind"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "aurora_ingest_batch_size",
            "Messages per processed (and acknowledged) batch",
            buckets=(1, 2, 5, 10, 50, 100, 250, 500, 1000, 2500),
            registry=self.registry,
        )
        self.commands_sent = Counter(
            "aurora_commands_sent",
            "Commands published to devices, by verb",
            ["verb"],
            registry=self.registry,
        )
        self.alerts_raised = Counter(
            "aurora_alerts_raised",
            "Alerts created at this site, by severity",
            ["severity"],
            registry=self.registry,
        )
        self.mqtt_connected = Gauge(
            "aurora_ingest_mqtt_connected",
            "1 while the ingest consumer is connected to the broker",
            registry=self.registry,
        )
        self.mqtt_reconnects = Counter(
            "aurora_ingest_mqtt_connects",
            "Successful connections of the ingest consumer to the broker",
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The text exposition of every metric."""
        return generate_latest(self.registry)
