"""``make bench``: federation propagation latency, alert created at b -> visible at a.

An alert is *visible* at the receiving site when its backend has stored it: the backend
appends every stored alert (a peer's too) to the site's ``aurora:cps:alerts`` Redis stream
right after the database write, so a blocking ``XREAD`` there timestamps arrival without
polling the REST API. Alerts go in one at a time through ``POST /api/v1/alerts`` at the
sending site, which is what an operator or a detector does; the clock starts just before
the request. Goal (issue 5): p99 <= 250 ms; the seed promises "within a heartbeat" (15 s).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Protocol

import httpx
from redis.asyncio import Redis

from backend.bus import ALERTS_STREAM
from bench.benchfile import BenchInfo
from bench.errors import BenchError
from bench.load.summary import percentile_of
from bench.perf.figures import Figure

#: Alerts measured per run ("a few hundred", issue 5).
ALERTS = 300
#: Alerts sent first and not counted: connection setup, first-use JIT of each path.
WARMUP = 10
ARRIVAL_TIMEOUT_S = 15.0
LINK_TIMEOUT_S = 60.0
GOAL_P99_MS = 250.0


#: Alerts in the quick run (``PerfConfig.quick``: proves the pipeline, not the machine).
QUICK_ALERTS = 20


class PerfContext(Protocol):
    """What this measurement needs of ``bench.perf.runner.PerfContext``: a two-site bench
    (``config.quick`` and ``progress`` are used when present)."""

    @property
    def info(self) -> BenchInfo: ...


class _Arrivals:
    """Arrival times (perf_counter) of peer alerts seen on the receiver's alert stream."""

    def __init__(self, redis_url: str, origin: str) -> None:
        self._redis: Any = Redis.from_url(redis_url, decode_responses=True)
        self._origin = origin
        self.seen: dict[str, float] = {}
        self._changed = asyncio.Condition()
        # Stopped by a flag rather than by cancelling: a cancelled blocking XREAD can
        # leave redis-py's connection (and our await on it) hanging.
        self._stopping = False

    async def last_id(self) -> str:
        entries = await self._redis.xrevrange(ALERTS_STREAM, count=1)
        return str(entries[0][0]) if entries else "0-0"

    async def follow(self, start_id: str) -> None:
        """XREAD BLOCK from ``start_id`` until :meth:`stop`."""
        last = start_id
        while not self._stopping:
            reply = await self._redis.xread({ALERTS_STREAM: last}, block=200, count=500)
            now = time.perf_counter()
            for _stream, entries in reply or []:
                for entry_id, fields in entries:
                    last = entry_id
                    data = json.loads(fields.get("data", "{}"))
                    if data.get("origin_site") == self._origin and data.get("origin_alert_id"):
                        self.seen.setdefault(str(data["origin_alert_id"]), now)
            async with self._changed:
                self._changed.notify_all()

    async def wait_for(self, alert_id: str, timeout_s: float) -> float | None:
        """Arrival time of ``alert_id``, None when it did not arrive within ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s), self._changed:
                await self._changed.wait_for(lambda: alert_id in self.seen)
        except TimeoutError:
            return None
        return self.seen[alert_id]

    def stop(self) -> None:
        """Make :meth:`follow` return after its current XREAD."""
        self._stopping = True

    async def aclose(self) -> None:
        await self._redis.aclose()


async def _wait_link_healthy(client: httpx.AsyncClient, api: str) -> None:
    deadline = time.monotonic() + LINK_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            response = await client.get(f"{api}/api/v1/system/topology")
            if response.status_code == 200 and any(
                link["status"] == "healthy" for link in response.json().get("links", [])
            ):
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.2)
    raise BenchError(
        f"the federation link did not become healthy within {LINK_TIMEOUT_S:.0f} s "
        f"(see {api}/api/v1/system/topology and the backend logs)"
    )


async def propagation_samples_ms(
    info: BenchInfo, sender: str, receiver: str, alerts: int = ALERTS, warmup: int = WARMUP
) -> tuple[list[float], int]:
    """Latencies (ms) of ``alerts`` alerts created at ``sender`` until stored at ``receiver``.

    Returns the samples and the number of alerts that never arrived (within the timeout).
    """
    send, recv = info.site(sender), info.site(receiver)
    arrivals = _Arrivals(recv.redis, origin=sender)
    samples: list[float] = []
    lost = 0
    async with httpx.AsyncClient(timeout=10) as client:
        await _wait_link_healthy(client, recv.api)
        follower = asyncio.create_task(arrivals.follow(await arrivals.last_id()))
        try:
            for index in range(warmup + alerts):
                started = time.perf_counter()
                response = await client.post(
                    f"{send.api}/api/v1/alerts",
                    json={
                        "type": "c2_beacon",
                        "severity": "critical",
                        "title": f"federation latency probe {index}",
                    },
                )
                if response.status_code not in (200, 201):
                    raise BenchError(
                        f"POST {send.api}/api/v1/alerts answered {response.status_code}: "
                        f"{response.text[:200]}"
                    )
                arrived = await arrivals.wait_for(response.json()["id"], ARRIVAL_TIMEOUT_S)
                if index < warmup:
                    continue
                if arrived is None:
                    lost += 1
                else:
                    samples.append((arrived - started) * 1000.0)
        finally:
            arrivals.stop()
            await asyncio.gather(follower, return_exceptions=True)
            await arrivals.aclose()
    return samples, lost


async def measure(ctx: PerfContext) -> list[Figure]:
    """Propagation p50/p99/max (ms) and lost alerts, alert created at b -> stored at a."""
    info = ctx.info
    if len(info.sites) < 2:
        raise BenchError("the federation measurement needs a two-site bench (sites a,b)")
    receiver, sender = sorted(info.sites)[:2]
    quick = bool(getattr(getattr(ctx, "config", None), "quick", False))
    alerts = QUICK_ALERTS if quick else ALERTS
    progress = getattr(ctx, "progress", None)
    if callable(progress):
        progress(f"federation: {alerts} critical alerts {sender} -> {receiver}, one at a time")
    samples, lost = await propagation_samples_ms(
        info, sender, receiver, alerts=alerts, warmup=2 if quick else WARMUP
    )
    note = f"{len(samples)} alerts {sender}->{receiver}; goal p99 <= {GOAL_P99_MS:.0f} ms"
    figures = [
        Figure("federation.propagation.p50", percentile_of(samples, 0.5) or 0.0, "ms", note=note),
        Figure("federation.propagation.p99", percentile_of(samples, 0.99) or 0.0, "ms", note=note),
        Figure("federation.propagation.max", max(samples, default=0.0), "ms", note=note),
        Figure("federation.propagation.lost", float(lost), "alerts", note=note),
    ]
    return [Figure(f.name, round(f.value, 2), f.unit, f.baseline, f.note) for f in figures]
