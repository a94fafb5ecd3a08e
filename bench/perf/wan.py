"""``python -m bench.perf --only wan``: federation across the emulated WAN (issue 17).

Starts its own two-site bench with each site in a network namespace and the link between
them at 50 ms each way (``aurora-bench up --wan``; root only, skipped with a note
elsewhere), then measures:

* ``wan.propagation.p50/p99``: alert created at b (REST) until stored at a (a's alert
  stream), one at a time, over a clean 50 ms link. Goal (issue 17): p99 <= one-way delay
  + 10 ms. Baseline: the same through the same namespaces and link process set to no
  delay (``wan.nodelay.*``, measured first), i.e. what the bench itself takes.
  ``wan.lossy.*``: the same over ``delay=50ms jitter=10ms loss=1%`` (no goal: TCP
  retransmissions set its tail);
* ``wan.transit.p50/p99`` (and ``wan.nodelay.transit.*``): the same alerts' mesh transit,
  b's publisher to a's inbox (``bench.perf.federation.transit_ms``), i.e. propagation
  without the two backends' REST and database work, which on a loaded machine sets most of
  the tail. It shows the link is crossed once: transit ~= one-way delay + the no-delay
  transit;
* ``wan.topology.latency``: the link latency ``/api/v1/system/topology`` reports (the
  echo, half a round trip) against the configured one-way delay (baseline);
  ``wan.link.rtt.p50/p99``: TCP handshakes from site a's namespace to site b's, the link
  alone, against twice the delay (how faithful the emulator is on this machine);
* ``wan.cut.*``: the link cut for 60 s while both sites raise critical alerts, then
  restored: seconds until every alert is at the other site, how many crossed during the
  cut (0: it really was cut), were lost (goal 0) or stored twice (goal 0).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import httpx

from bench.benchfile import SiteInfo
from bench.errors import BenchError
from bench.load.summary import percentile_of
from bench.perf.federation import KEEPALIVE_EXPIRY_S, propagation_run
from bench.perf.figures import Figure
from bench.site import BenchOptions, RunningBench, start_bench
from bench.wan.conditions import LinkConditions
from bench.wan.provider import API_PORT
from bench.wan.topology import support_problem

DELAY_MS = 50.0
GOAL_P99_MS = DELAY_MS + 10.0
CLEAN = LinkConditions(delay_ms=DELAY_MS)
#: The same sites and link process with no delay: what the bench itself takes.
NO_DELAY = LinkConditions()
LOSSY = LinkConditions(delay_ms=DELAY_MS, jitter_ms=10.0, loss=0.01)
ALERTS, LOSSY_ALERTS, WARMUP = 200, 100, 10
CUT_S, CUT_ALERTS_PER_SITE = 60.0, 20
CONVERGE_TIMEOUT_S = 240.0
LATENCY_SAMPLES, LATENCY_EVERY_S = 10, 1.0
RTT_SAMPLES = 100
#: Heartbeats (and so echo probes) every 2 s instead of 15 s: enough samples in seconds.
SITE_ENV = {"AURORA_HEARTBEAT_INTERVAL_SECONDS": "2"}
#: The figure's whole budget (the runner's cap): start, three runs, a 60 s cut, converge.
BUDGET_S = 600.0


class PerfContext(Protocol):
    """What this needs of ``bench.perf.runner.PerfContext`` (the main bench's state dir)."""

    @property
    def bench(self) -> RunningBench: ...


def _progress(ctx: Any) -> Callable[[str], None]:
    progress = getattr(ctx, "progress", None)
    return progress if callable(progress) else (lambda _text: None)


async def measure(ctx: PerfContext) -> list[Figure]:
    """Every figure of the module doc; [] (with a note) where namespaces cannot be made."""
    say = _progress(ctx)
    problem = support_problem()
    if problem is not None:
        say(f"wan: skipped: {problem}")
        return []
    quick = bool(getattr(getattr(ctx, "config", None), "quick", False))
    state_dir = Path(ctx.bench.state_dir).parent / "wan"
    for site in ("a", "b"):  # fresh site state, as the runner does for its own bench
        shutil.rmtree(state_dir / site, ignore_errors=True)
    say("wan: two sites in namespaces, joined by the emulated link")
    # Started from the main thread on purpose: its servers then die with this process
    # (pdeathsig), which a worker thread's children would not.
    bench = start_bench(
        BenchOptions(
            sites=["a", "b"],
            state_dir=state_dir,
            wan=NO_DELAY,
            site_env={"a": dict(SITE_ENV), "b": dict(SITE_ENV)},
        )
    )
    try:
        return await _measure(bench, quick, say)
    finally:
        bench.close()


async def _measure(bench: RunningBench, quick: bool, say: Callable[[str], None]) -> list[Figure]:
    wan = bench.wan
    if wan is None:
        raise BenchError("the WAN bench started without its link")
    info = bench.info
    alerts = 20 if quick else ALERTS
    say(f"wan: {alerts} critical alerts b -> a across {NO_DELAY.describe()} (the baseline)")
    nodelay = await propagation_run(info, "b", "a", alerts=alerts, warmup=2 if quick else WARMUP)
    await asyncio.to_thread(wan.set_conditions, CLEAN)
    say(f"wan: {alerts} critical alerts b -> a across {CLEAN.describe()}")
    clean = await propagation_run(info, "b", "a", alerts=alerts, warmup=2)
    latency = await _topology_latency(info.site("a"), 3 if quick else LATENCY_SAMPLES)
    rtt = await link_rtt_ms(bench, 10 if quick else RTT_SAMPLES)
    await asyncio.to_thread(wan.set_conditions, LOSSY)
    lossy_alerts = 20 if quick else LOSSY_ALERTS
    say(f"wan: {lossy_alerts} alerts b -> a across {LOSSY.describe()}")
    lossy = await propagation_run(info, "b", "a", alerts=lossy_alerts, warmup=2)
    cut_s = 5.0 if quick else CUT_S
    per_site = 3 if quick else CUT_ALERTS_PER_SITE
    say(f"wan: link cut {cut_s:g} s, {per_site} alerts raised at each site meanwhile")
    cut = await _cut_run(bench, cut_s, per_site)
    stats = wan.stats()
    base50, base99 = _p(nodelay.samples, 0.5), _p(nodelay.samples, 0.99)
    transit50, transit99 = _p(nodelay.transit, 0.5), _p(nodelay.transit, 0.99)
    goal = f"goal p99 <= {GOAL_P99_MS:g} ms (one-way delay + 10 ms); baseline: no delay"
    clean_note = f"{len(clean.samples)} alerts b->a, {CLEAN.describe()}; {goal}"
    lossy_note = f"{len(lossy.samples)} alerts b->a, {LOSSY.describe()}; no goal"
    nodelay_note = f"{len(nodelay.samples)} alerts b->a through the link at no delay"
    transit_note = (
        f"{len(clean.transit)} alerts b->a, {CLEAN.describe()}: b's publisher to a's inbox "
        f"(ms stamps); crossing the link once is {DELAY_MS:g} ms; baseline: no delay"
    )
    nodelay_transit_note = (
        f"{len(nodelay.transit)} alerts b->a at no delay: b's publisher to a's inbox"
    )
    rtt_note = f"{len(rtt)} TCP handshakes a->b, the link alone; baseline: twice the delay"
    cut_note = (
        f"{cut_s:g} s cut, {per_site} critical alerts at each site during it; goal 0 lost, "
        f"0 duplicated; link dropped {sum(stats['dropped'])} packets in all"
    )
    return [
        Figure("wan.nodelay.propagation.p50", base50, "ms", note=nodelay_note),
        Figure("wan.nodelay.propagation.p99", base99, "ms", note=nodelay_note),
        Figure("wan.propagation.p50", _p(clean.samples, 0.5), "ms", base50, clean_note),
        Figure("wan.propagation.p99", _p(clean.samples, 0.99), "ms", base99, clean_note),
        Figure("wan.propagation.lost", float(clean.lost), "alerts", note=clean_note),
        Figure("wan.nodelay.transit.p50", transit50, "ms", note=nodelay_transit_note),
        Figure("wan.nodelay.transit.p99", transit99, "ms", note=nodelay_transit_note),
        Figure("wan.transit.p50", _p(clean.transit, 0.5), "ms", transit50, transit_note),
        Figure("wan.transit.p99", _p(clean.transit, 0.99), "ms", transit99, transit_note),
        Figure("wan.lossy.propagation.p50", _p(lossy.samples, 0.5), "ms", base50, lossy_note),
        Figure("wan.lossy.propagation.p99", _p(lossy.samples, 0.99), "ms", base99, lossy_note),
        Figure("wan.lossy.propagation.lost", float(lossy.lost), "alerts", note=lossy_note),
        Figure(
            "wan.topology.latency",
            round(statistics.median(latency), 2) if latency else 0.0,
            "ms",
            DELAY_MS,
            f"median of {len(latency)} topology reads at a (echo: half a round trip); "
            f"range {min(latency, default=0):.1f}-{max(latency, default=0):.1f} ms; "
            "baseline: the configured one-way delay",
        ),
        Figure("wan.link.rtt.p50", _p(rtt, 0.5), "ms", 2 * DELAY_MS, rtt_note),
        Figure("wan.link.rtt.p99", _p(rtt, 0.99), "ms", 2 * DELAY_MS, rtt_note),
        Figure("wan.cut.converge", round(cut["converge_s"], 2), "s", note=cut_note),
        Figure("wan.cut.crossed_while_cut", cut["crossed"], "alerts", note=cut_note),
        Figure("wan.cut.lost", cut["lost"], "alerts", note=cut_note),
        Figure("wan.cut.duplicated", cut["duplicated"], "alerts", note=cut_note),
    ]


def _p(samples: list[float], fraction: float) -> float:
    return round(percentile_of(samples, fraction) or 0.0, 2)


def _client(site: SiteInfo) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=10,
        limits=httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY_S),
        headers=site.api_headers(),
    )


async def _topology_latency(site: SiteInfo, samples: int) -> list[float]:
    """``latency_ms`` of the link as ``site``'s topology reports it, ``samples`` reads."""
    values: list[float] = []
    async with _client(site) as client:
        for _ in range(samples):
            response = await client.get(f"{site.api}/api/v1/system/topology")
            response.raise_for_status()
            for link in response.json().get("links", []):
                if link.get("latency_ms") is not None:
                    values.append(float(link["latency_ms"]))
            await asyncio.sleep(LATENCY_EVERY_S)
    return values


async def _post(client: httpx.AsyncClient, site: SiteInfo, title: str) -> str:
    response = await client.post(
        f"{site.api}/api/v1/alerts",
        json={"type": "c2_beacon", "severity": "critical", "title": title},
    )
    if response.status_code != 201:
        raise BenchError(f"POST {site.api}/api/v1/alerts: {response.status_code} {response.text}")
    return str(response.json()["id"])


async def _federated(client: httpx.AsyncClient, site: SiteInfo, origin: str) -> list[str]:
    """Origin alert ids stored at ``site`` from ``origin`` (a duplicate shows twice)."""
    response = await client.get(
        f"{site.api}/api/v1/alerts", params={"source": f"federation:{origin}", "limit": 1000}
    )
    response.raise_for_status()
    return [str(item["origin_alert_id"]) for item in response.json()["items"]]


async def _cut_run(bench: RunningBench, cut_s: float, per_site: int) -> dict[str, float]:
    """Cut, raise alerts at both sites over the cut, restore, time the convergence."""
    wan = bench.wan
    assert wan is not None
    a, b = bench.site("a"), bench.site("b")
    raised: dict[str, list[str]] = {"a": [], "b": []}
    async with _client(a) as client:
        await asyncio.to_thread(wan.cut)
        began = time.monotonic()
        for index in range(per_site):
            for site_id, site in (("a", a), ("b", b)):
                raised[site_id].append(await _post(client, site, f"during the cut {index}"))
            next_slot = began + (index + 1) * cut_s / per_site
            await asyncio.sleep(max(0.0, next_slot - time.monotonic()))
        crossed = len(set(raised["b"]) & set(await _federated(client, a, "b"))) + len(
            set(raised["a"]) & set(await _federated(client, b, "a"))
        )
        await asyncio.to_thread(wan.restore)
        restored = time.monotonic()
        #: Not converged within the timeout: the figure is the timeout (and lost says why).
        converge_s = CONVERGE_TIMEOUT_S
        at_a: list[str] = []
        at_b: list[str] = []
        while time.monotonic() - restored < CONVERGE_TIMEOUT_S:
            at_a, at_b = await _federated(client, a, "b"), await _federated(client, b, "a")
            if set(raised["b"]) <= set(at_a) and set(raised["a"]) <= set(at_b):
                converge_s = time.monotonic() - restored
                break
            await asyncio.sleep(0.2)
    lost = len(set(raised["b"]) - set(at_a)) + len(set(raised["a"]) - set(at_b))
    wanted_a, wanted_b = set(raised["b"]), set(raised["a"])
    duplicated = sum(1 for i in at_a if i in wanted_a) - len(wanted_a & set(at_a))
    duplicated += sum(1 for i in at_b if i in wanted_b) - len(wanted_b & set(at_b))
    return {
        "converge_s": converge_s,
        "crossed": float(crossed),
        "lost": float(lost),
        "duplicated": float(duplicated),
    }


#: Run inside site 0's namespace: TCP handshakes to site 1, one at a time; prints the
#: round trips (ms) as JSON. A SYN/SYN-ACK pair is one trip each way through the link.
_RTT_SCRIPT = """
import json, socket, sys, time
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = []
for _ in range(count):
    began = time.perf_counter()
    with socket.create_connection((host, port), timeout=10):
        out.append((time.perf_counter() - began) * 1000.0)
print(json.dumps(out))
"""


async def link_rtt_ms(bench: RunningBench, count: int) -> list[float]:
    """TCP handshake round trips from site a's namespace to site b's API (the link alone)."""
    wan = bench.wan
    assert wan is not None
    command = [
        *("ip", "netns", "exec", wan.plan.namespace(0), sys.executable, "-c", _RTT_SCRIPT),
        *(wan.plan.site_ip(1), str(API_PORT), str(count)),
    ]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise BenchError(f"round trips across the link failed: {err.decode()[-300:]}")
    return [float(value) for value in json.loads(out)]
