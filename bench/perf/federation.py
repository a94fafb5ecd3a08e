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
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import httpx
from redis.asyncio import Redis

from backend.bus import ALERTS_STREAM
from bench.benchfile import BenchInfo, SiteInfo
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
#: Idle HTTP connections are dropped after this many seconds: below uvicorn's 5 s
#: keep-alive timeout, so no request goes out on a connection the server is closing.
KEEPALIVE_EXPIRY_S = 2.0
#: Attempts of one alert POST that fails in transport (connection reset, read error).
POST_ATTEMPTS = 3
#: Alerts lost in a row that mean the link is down, not slow: the run stops there.
MAX_LOST_IN_A_ROW = 3


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
        #: Mesh transit (ms) of each seen alert, where its stamps allow (:func:`transit_ms`).
        self.transit: dict[str, float] = {}
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
                        alert_id = str(data["origin_alert_id"])
                        self.seen.setdefault(alert_id, now)
                        transit = transit_ms(data)
                        if transit is not None:
                            self.transit.setdefault(alert_id, transit)
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


def transit_ms(alert: dict[str, Any]) -> float | None:
    """``received_at - federated_at`` (ms) of a stored peer alert; None when unstamped."""
    stamps = (alert.get("details") or {}).get("federation") or {}
    try:
        sent = datetime.fromisoformat(str(stamps["federated_at"]).replace("Z", "+00:00"))
        got = datetime.fromisoformat(str(stamps["received_at"]).replace("Z", "+00:00"))
        return (got - sent).total_seconds() * 1000.0
    except (KeyError, TypeError, ValueError):
        return None


async def _wait_link_healthy(client: httpx.AsyncClient, site: SiteInfo) -> None:
    api = site.api
    deadline = time.monotonic() + LINK_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            response = await client.get(f"{api}/api/v1/system/topology", headers=site.api_headers())
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


@dataclass
class PropagationRun:
    """Samples (ms) of one run, their mesh transits (ms, module doc), alerts that never
    arrived, POSTs sent again."""

    samples: list[float] = field(default_factory=list)
    transit: list[float] = field(default_factory=list)
    lost: int = 0
    retries: int = 0
    retry_errors: list[str] = field(default_factory=list)


async def _post_alert(
    client: httpx.AsyncClient, api: str, index: int, run: PropagationRun
) -> tuple[str, float]:
    """POST one probe alert; (its id, perf_counter when the successful attempt started).

    A transport failure is retried on a fresh connection: the alert of a failed attempt
    may still have been stored, and then also travels, but only the returned id is timed.
    """
    for attempt in range(1, POST_ATTEMPTS + 1):
        started = time.perf_counter()
        try:
            response = await client.post(
                f"{api}/api/v1/alerts",
                json={
                    "type": "c2_beacon",
                    "severity": "critical",
                    "title": f"federation latency probe {index}",
                },
            )
        except httpx.TransportError as error:
            if attempt == POST_ATTEMPTS:
                raise BenchError(
                    f"POST {api}/api/v1/alerts failed {POST_ATTEMPTS} times, last: "
                    f"{type(error).__name__}: {error or 'connection closed'} "
                    "(is the sending backend up? see its backend.log)"
                ) from None
            run.retries += 1
            run.retry_errors.append(type(error).__name__)
            await asyncio.sleep(0.1 * attempt)
            continue
        if response.status_code not in (200, 201):
            raise BenchError(
                f"POST {api}/api/v1/alerts answered {response.status_code}: {response.text[:200]}"
            )
        return str(response.json()["id"]), started
    raise AssertionError("unreachable")  # the loop returns or raises


async def propagation_run(
    info: BenchInfo, sender: str, receiver: str, alerts: int = ALERTS, warmup: int = WARMUP
) -> PropagationRun:
    """Time ``alerts`` alerts created at ``sender`` until stored at ``receiver``."""
    send, recv = info.site(sender), info.site(receiver)
    arrivals = _Arrivals(recv.redis, origin=sender)
    run = PropagationRun()
    lost_in_a_row = 0
    limits = httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY_S)
    # The client's own headers authenticate the POSTs at the sending site.
    async with httpx.AsyncClient(timeout=10, limits=limits, headers=send.api_headers()) as client:
        await _wait_link_healthy(client, recv)
        follower = asyncio.create_task(arrivals.follow(await arrivals.last_id()))
        try:
            for index in range(warmup + alerts):
                alert_id, started = await _post_alert(client, send.api, index, run)
                arrived = await arrivals.wait_for(alert_id, ARRIVAL_TIMEOUT_S)
                if follower.done():
                    # The receiver's stream reader died: every later wait would time out.
                    raise BenchError(
                        f"reading {ALERTS_STREAM} at {recv.redis} failed: {follower.exception()}"
                    )
                if arrived is None:
                    lost_in_a_row += 1
                    if lost_in_a_row >= MAX_LOST_IN_A_ROW:
                        raise BenchError(
                            f"{lost_in_a_row} alerts in a row from {sender} did not reach "
                            f"{receiver} within {ARRIVAL_TIMEOUT_S:g} s each (see "
                            f"{recv.api}/api/v1/system/topology and both backend logs)"
                        )
                else:
                    lost_in_a_row = 0
                if index < warmup:
                    continue
                if arrived is None:
                    run.lost += 1
                else:
                    run.samples.append((arrived - started) * 1000.0)
                    if alert_id in arrivals.transit:
                        run.transit.append(arrivals.transit[alert_id])
        finally:
            arrivals.stop()
            await asyncio.gather(follower, return_exceptions=True)
            await arrivals.aclose()
    return run


async def propagation_samples_ms(
    info: BenchInfo, sender: str, receiver: str, alerts: int = ALERTS, warmup: int = WARMUP
) -> tuple[list[float], int]:
    """Latencies (ms) of ``alerts`` alerts created at ``sender`` until stored at ``receiver``.

    Returns the samples and the number of alerts that never arrived (within the timeout).
    """
    run = await propagation_run(info, sender, receiver, alerts, warmup)
    return run.samples, run.lost


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
    run = await propagation_run(
        info, sender, receiver, alerts=alerts, warmup=2 if quick else WARMUP
    )
    samples, lost = run.samples, run.lost
    note = f"{len(samples)} alerts {sender}->{receiver}; goal p99 <= {GOAL_P99_MS:.0f} ms"
    if run.retries:
        note += (
            f"; {run.retries} POST(s) sent again after {', '.join(sorted(set(run.retry_errors)))}"
        )
    figures = [
        Figure("federation.propagation.p50", percentile_of(samples, 0.5) or 0.0, "ms", note=note),
        Figure("federation.propagation.p99", percentile_of(samples, 0.99) or 0.0, "ms", note=note),
        Figure("federation.propagation.max", max(samples, default=0.0), "ms", note=note),
        Figure("federation.propagation.lost", float(lost), "alerts", note=note),
    ]
    return [Figure(f.name, round(f.value, 2), f.unit, f.baseline, f.note) for f in figures]
