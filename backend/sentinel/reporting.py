"""Where the pipeline's results go: the events stream, the counters hash, the alert path.

* **Security events** are appended to the Redis stream :data:`EVENTS_STREAM` in the bus's
  entry shape (``type`` = ``security_event``, ``data`` = compact JSON), which the console's
  feed passes to the page as is. ``data`` fields: ``stage``, ``rule``, ``client_id``,
  ``severity``, ``count``, ``first_at``, ``last_at``, ``at`` (RFC 3339), ``detail``,
  ``samples``, ``closed`` (true for the window's closing re-emission with its final count),
  ``worker``.
* **Counters**: one ``HINCRBY`` per field per batch on :data:`COUNTERS_KEY`, integer fields
  ``inspected`` (every message the pipeline judged), ``delivered`` (reached the stream,
  flagged ones included), ``flagged`` (delivered with findings), ``quarantined``. The
  console's Sentinel panel reads exactly these; keep them.
* **Alerts**: each event *opening* (not its closing re-emission) at or above
  ``alert_min_severity`` (default high, the federation's default gate; below it an event
  is on the stream and the console only, so a burst's thousand medium rate flags do not
  become a thousand SOC alerts) is raised through the
  site's one alert create path, ``POST /api/v1/alerts`` (``AlertService.raise_alert``), so
  the federation publisher sees it like any alert and those at or above its severity gate
  reach the peer. The worker is a separate process from the backend, so the REST API is
  that path's only door; alerts wait in a bounded queue while the backend is away.

Writing never raises into the worker: a Redis or HTTP outage is logged and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from backend.bus.streams import StreamEntry
from backend.contract import Severity
from backend.retry import Backoff
from backend.sentinel.inspection import SecurityEvent
from backend.sentinel.naming import COUNTERS_KEY, EVENTS_STREAM

log = logging.getLogger("backend.sentinel.reporting")

#: The counters hash's fields (the console panel's contract).
COUNTER_FIELDS = ("inspected", "delivered", "flagged", "quarantined")
EVENTS_MAXLEN = 100_000
#: Alerts waiting for the backend, at most; beyond it new ones are dropped and counted.
ALERT_QUEUE = 1_000
ALERT_TYPE_PREFIX = "sentinel."
#: Events waiting for Redis, at most.
MAX_PENDING_EVENTS = 10_000


def iso(at_s: float) -> str:
    """Unix seconds as RFC 3339 UTC with milliseconds."""
    return datetime.fromtimestamp(at_s, UTC).isoformat(timespec="milliseconds")


def event_data(event: SecurityEvent, worker: str) -> dict[str, Any]:
    """The ``data`` of an :data:`EVENTS_STREAM` entry (the console shows it)."""
    return {
        "stage": event.stage.value,
        "rule": event.rule,
        "client_id": event.client_id,
        "severity": event.severity.value,
        "count": event.count,
        "first_at": iso(event.first_at_s),
        "last_at": iso(event.last_at_s),
        "at": iso(event.last_at_s if event.closed else event.first_at_s),
        "detail": event.detail[:500],
        "samples": [s[:300] for s in event.samples],
        "closed": event.closed,
        "worker": worker,
    }


def alert_body(event: SecurityEvent, worker: str) -> dict[str, Any]:
    """``POST /api/v1/alerts`` body for an event (the API's AlertBody schema)."""
    return {
        "type": f"{ALERT_TYPE_PREFIX}{event.rule}"[:64],
        "severity": event.severity.value,
        "title": f"Sentinel {event.stage.value}/{event.rule} for client {event.client_id}"[:256],
        "description": event.detail[:4000],
        "details": {
            "sentinel": True,
            "stage": event.stage.value,
            "rule": event.rule,
            "client_id": event.client_id,
            "count": event.count,
            "first_at": iso(event.first_at_s),
            "worker": worker,
        },
    }


def counter_increments(counts: Mapping[str, int]) -> dict[str, int]:
    """The non-zero increments of :data:`COUNTER_FIELDS` (others are refused)."""
    unknown = set(counts) - set(COUNTER_FIELDS)
    if unknown:
        raise ValueError(f"not a Sentinel counter: {', '.join(sorted(unknown))}")
    return {name: value for name, value in counts.items() if value}


class AlertRaiser:
    """Raises events as alerts over the site's REST API, in order, retrying while it is down."""

    def __init__(self, api_url: str, token: str, *, timeout_s: float = 5.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.AsyncClient(base_url=api_url, headers=headers, timeout=timeout_s)
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(ALERT_QUEUE)
        self.raised = 0
        self.dropped = 0

    @property
    def pending(self) -> int:
        """Alerts waiting to be sent."""
        return self._queue.qsize()

    def offer(self, body: dict[str, Any]) -> None:
        """Queue one alert; dropped (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(body)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("alert for %s dropped: %d alerts wait already", body["type"], ALERT_QUEUE)

    async def run(self) -> None:
        """Send queued alerts until cancelled; a failed send is retried with backoff."""
        try:
            while True:
                body = await self._queue.get()
                await self._send(body)
        finally:
            await self._client.aclose()

    async def _send(self, body: dict[str, Any]) -> None:
        delays = Backoff(initial_s=0.2, max_s=5.0).delays()
        while True:
            try:
                response = await self._client.post("/api/v1/alerts", json=body)
            except httpx.HTTPError as error:
                problem = f"{type(error).__name__}: {error}"
            else:
                if response.status_code == 201:
                    self.raised += 1
                    return
                if 400 <= response.status_code < 500 and response.status_code not in (401, 429):
                    # The body is ours and refused: retrying cannot help; say why once.
                    log.warning(
                        "alert %s refused by the backend (%d): %s",
                        body["type"],
                        response.status_code,
                        response.text[:300],
                    )
                    self.dropped += 1
                    return
                problem = f"HTTP {response.status_code}"
            log.info("alert %s not raised yet (%s); retrying", body["type"], problem)
            await asyncio.sleep(next(delays))


class Reporter:
    """Buffers a worker's events and counts and writes them in one Redis round trip per
    flush; offers opening events to the alert raiser.

    :meth:`add` never waits, so a slow or absent Redis never holds a batch of alerts:
    counts add up in memory and are written when Redis answers again; events wait too, at
    most :data:`MAX_PENDING_EVENTS` (the oldest beyond it are dropped and counted).
    """

    def __init__(
        self,
        redis: aioredis.Redis | None,
        *,
        worker: str,
        alerts: AlertRaiser | None = None,
        alert_min_severity: Severity = Severity.HIGH,
        flush_s: float = 0.1,
    ) -> None:
        self._redis = redis
        self._worker = worker
        self._alerts = alerts
        self._alert_rank = alert_min_severity.rank
        self._flush_s = flush_s
        self._events: list[SecurityEvent] = []
        self._counts: dict[str, int] = dict.fromkeys(COUNTER_FIELDS, 0)
        self._wake = asyncio.Event()
        self.failures = 0
        self.events_dropped = 0

    def add(self, events: Iterable[SecurityEvent], counts: Mapping[str, int]) -> None:
        """Buffer ``events`` and ``counts``; raise opening events as alerts."""
        for name, value in counter_increments(counts).items():
            self._counts[name] += value
        for event in events:
            self._events.append(event)
            if (
                self._alerts is not None
                and not event.closed
                and event.severity.rank >= self._alert_rank
            ):
                self._alerts.offer(alert_body(event, self._worker))
        if len(self._events) > MAX_PENDING_EVENTS:
            excess = len(self._events) - MAX_PENDING_EVENTS
            del self._events[:excess]
            self.events_dropped += excess
        self._wake.set()

    async def run(self) -> None:
        """Flush every ``flush_s`` while there is something to write, until cancelled."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                await self.flush()
                await asyncio.sleep(self._flush_s)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.flush())

    async def flush(self) -> bool:
        """Write what is buffered; False (kept for the next try) if Redis did not take it."""
        increments = {name: value for name, value in self._counts.items() if value}
        events = list(self._events)
        if self._redis is None or not (events or increments):
            return True
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for event in events:
                    entry = StreamEntry(
                        EVENTS_STREAM, "security_event", event_data(event, self._worker)
                    )
                    fields: dict[Any, Any] = entry.fields()
                    pipe.xadd(EVENTS_STREAM, fields, maxlen=EVENTS_MAXLEN, approximate=True)
                for name, value in increments.items():
                    pipe.hincrby(COUNTERS_KEY, name, value)
                await pipe.execute()
        except (RedisError, OSError) as error:
            self.failures += 1
            if self.failures == 1 or self.failures % 100 == 0:
                log.warning("security events and counters not written to Redis: %s", error)
            self._wake.set()
            return False
        # Only what was written is taken off (add() may have run during the await).
        del self._events[: len(events)]
        for name, value in increments.items():
            self._counts[name] -= value
        return True

    async def aclose(self) -> None:
        """Release the Redis connection (the alert raiser is cancelled by its owner)."""
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
