"""The ingest watcher: finds each load message in the Redis streams the backend writes.

A greenlet per locust process reads the site's streams from positions fixed *before* any
device publishes, so no entry slips between; every entry that carries the ``trace`` of one
of this process's devices is accounted in the ledger. In a distributed run each worker
watches only its own devices' traces, so send and receive times share one clock. gevent is
here because locust's processes run on it (redis-py is cooperative there).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent
import redis

from backend.bus import AUDIT_STREAM, TELEMETRY_STREAM
from backend.contract import MessageKind
from bench.load.ledger import Delivery, Ledger
from bench.load.problems import Problems
from bench.load.trace import TRACE_FIELD, TraceError, decode_trace

#: Where the backend writes what it ingested, per message kind: (stream, entry types).
#: One message may land in several streams (a reading goes to telemetry *and* audit); only
#: the listed (stream, type) counts, so a second copy is never mistaken for a duplicate.
INGEST_STREAMS: dict[str, tuple[str, frozenset[str]]] = {
    MessageKind.TELEMETRY.value: (TELEMETRY_STREAM, frozenset({"telemetry"})),
    MessageKind.STATUS.value: (AUDIT_STREAM, frozenset({"status", "device_status"})),
    MessageKind.BADGE_EVENT.value: (AUDIT_STREAM, frozenset({"badge_read", "badge_event"})),
}
_ACCEPTED = {
    (stream, entry_type): kind
    for kind, (stream, types) in INGEST_STREAMS.items()
    for entry_type in types
}
RETRY_S = 1.0


class IngestWatcher:
    """Reads the streams in a greenlet; ``on_delivery`` gets each first-seen message.

    Construction reads the current stream ends and raises :class:`redis.RedisError` when
    the site's Redis cannot be reached: without it nothing ingested could be counted.
    Read errors later are recorded in ``problems`` (cause ``redis``) and retried.
    """

    def __init__(
        self,
        redis_url: str,
        ledger: Ledger,
        problems: Problems,
        on_delivery: Callable[[Delivery, float], None],
    ) -> None:
        self.redis_url = redis_url
        self._ledger = ledger
        self._problems = problems
        self._on_delivery = on_delivery
        self._redis = redis.Redis.from_url(
            redis_url, decode_responses=True, socket_connect_timeout=5.0
        )
        try:
            streams = sorted({stream for stream, _ in INGEST_STREAMS.values()})
            self._positions = {stream: self._last_id(stream) for stream in streams}
        except redis.RedisError:
            self._redis.close()
            raise
        self._greenlet = gevent.spawn(self._watch)

    def _last_id(self, stream: str) -> str:
        newest = self._redis.xrevrange(stream, count=1)
        return str(newest[0][0]) if newest else "0-0"

    def _watch(self) -> None:
        while True:
            try:
                batches: Any = self._redis.xread(
                    dict(self._positions),  # type: ignore[arg-type]
                    count=2000,
                    block=500,
                )
            except redis.RedisError as error:
                self._problems.record(
                    "redis", error, f"reading the streams at {self.redis_url} failed: {error}"
                )
                gevent.sleep(RETRY_S)
                continue
            received_ns = time.time_ns()
            for stream, entries in batches or []:
                for entry_id, fields in entries:
                    self._positions[stream] = entry_id
                    self._account(stream, fields, received_ns)

    def _account(self, stream: str, fields: dict[str, str], received_ns: int) -> None:
        raw = fields.get(TRACE_FIELD)
        if raw is None or (stream, fields.get("type", "")) not in _ACCEPTED:
            return
        try:
            trace = decode_trace(raw)
        except TraceError:
            return
        if not self._ledger.knows(trace.client):
            return
        delivery = self._ledger.ingested(trace, received_ns)
        if delivery is not None:
            self._on_delivery(delivery, received_ns / 1e9)

    def close(self) -> None:
        """Stop the greenlet, then close its connection (idempotent)."""
        # Kill (and wait for) the reader before closing its connection under it.
        self._greenlet.kill(block=True, timeout=2.0)
        self._redis.close()
