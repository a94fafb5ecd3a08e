"""Auth decisions, audited to a Redis stream and counted in Prometheus.

Seed 003: "Audit logging of all authentication events". The stream
(:data:`~backend.sentinel.naming.AUTH_AUDIT_STREAM`) is what scenarios and issue 14's
aggregator read; one entry per decision with client id, client type, remote address,
result, reason, latency and the node that asked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Histogram

from backend.sentinel.naming import AUTH_AUDIT_STREAM

log = logging.getLogger("backend.sentinel.audit")
AUDIT_MAXLEN = 100_000


@dataclass(frozen=True)
class AuthEvent:
    """One audited decision."""

    client_id: str
    client_type: str
    remote: str
    allowed: bool
    reason: str
    latency_ms: float
    server: str
    instance: str
    #: Answered from the callouts' verified-credential cache (no KDF, no Auth DB read).
    cached: bool = False

    def fields(self) -> dict[str, str]:
        """The stream entry (strings only; the id is the stream's own timestamp)."""
        return {
            "client_id": self.client_id[:128],
            "client_type": self.client_type,
            "remote": self.remote[:128],
            "result": "allowed" if self.allowed else "denied",
            "reason": self.reason,
            "latency_ms": f"{self.latency_ms:.3f}",
            "server": self.server[:64],
            "instance": self.instance,
            "cached": "true" if self.cached else "false",
        }


class AuthMetrics:
    """Prometheus counters of auth decisions (own registry: several per test process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.decisions = Counter(
            "sentinel_auth_decisions",
            "Auth-callout decisions by result and reason",
            ["result", "reason", "client_type"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "sentinel_auth_latency_seconds",
            "Time from request receipt to response sent",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )


class Auditor:
    """Counts every decision and appends it to the audit stream (never raises)."""

    def __init__(self, redis: aioredis.Redis | None, metrics: AuthMetrics) -> None:
        self._redis = redis
        self.metrics = metrics

    async def record(self, event: AuthEvent) -> None:
        """Count, log and stream one decision."""
        result = "allowed" if event.allowed else "denied"
        self.metrics.decisions.labels(result, event.reason, event.client_type).inc()
        self.metrics.latency.observe(event.latency_ms / 1000)
        log.info(
            "auth %s client=%s type=%s remote=%s reason=%s latency_ms=%.2f",
            result,
            event.client_id[:64],
            event.client_type,
            event.remote,
            event.reason,
            event.latency_ms,
        )
        if self._redis is None:
            return
        try:
            fields: dict[Any, Any] = event.fields()
            await self._redis.xadd(AUTH_AUDIT_STREAM, fields, maxlen=AUDIT_MAXLEN, approximate=True)
        except Exception as error:  # the decision stands; the gap is logged
            log.warning("auth audit entry not written to Redis: %s", error)
