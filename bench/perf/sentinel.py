"""Sentinel figures (seed 003): auth connect latency, idle connections and memory per
connection, fan-out delivery latency, failover time and loss.

* **auth connect p99** — NATS connects through the callout: cold (a full argon2id check) and
  warm (the callout's cache); the handler's own time from the audit stream.
* **idle connections / memory** — MQTT 3.1.1 clients with a QoS 1 subscription held on one
  node; memory is the node's RSS growth (``/varz``) over the connections.
* **fan-out** — subscribers spread 50/30/20 over the regions, each on its own topic; a
  publisher sends ``rate`` msg/s through the origin Mosquitto; latency is origin publish ->
  subscriber receipt (one clock). Subscribers that connected within the budget are the
  figure's N (the issue's goal is 5,000; the 2-core box says what it held).
* **failover** — SIGKILL of the stream leader under load: seconds until a new leader
  answers, and alerts lost and doubled once the node is back.

The fleet's Auth DB rows share one *cheap* argon2 hash so the ramp measures the broker, not
the KDF; the auth figures use the production parameters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import statistics
import time
import uuid
from typing import Any

import aiomqtt
import argon2
import httpx
import redis.asyncio as aioredis

from backend.sentinel.authdb import AuthDb
from backend.sentinel.naming import AUTH_AUDIT_STREAM, STREAM
from bench.perf.figures import Figure
from bench.perf.runner import PerfContext
from bench.services.sentinel_client import mqtt_client, nats_connect
from bench.services.sentinel_config import WORKER_USER

PASSWORD = "perf-password"  # noqa: S105 (the fleet's shared bench password)
CHEAP = argon2.PasswordHasher(time_cost=1, memory_cost=256, parallelism=1)
PARTS_ENV = "AURORA_PERF_SENTINEL_PARTS"


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(ctx: PerfContext) -> list[Figure]:
    """Every Sentinel figure (see the module doc)."""
    bench = ctx.bench
    sentinel = bench.info.sentinel
    if sentinel is None:
        raise RuntimeError("the bench runs without --sentinel")
    quick = ctx.config.quick
    # Each part has its own cap, so one that overruns on a loaded machine costs only its
    # own figures; a failed part is reported as a figure of its own, never silently.
    parts: list[tuple[str, float, Any]] = [
        ("auth", 120.0, lambda: _auth(ctx, samples=20 if quick else 50)),
        ("idle", 150.0, lambda: _idle(ctx, count=100 if quick else 1000)),
        (
            "fanout",
            300.0,
            lambda: _fanout(
                ctx,
                subscribers=100 if quick else 5000,
                rate=50.0 if quick else 600.0,
                duration_s=3.0 if quick else 10.0,
                ramp_budget_s=30.0 if quick else 120.0,
            ),
        ),
        ("failover", 150.0, lambda: _failover(ctx, rate=50.0 if quick else 200.0)),
    ]
    chosen = _chosen_parts([name for name, _cap, _part in parts])
    figures: list[Figure] = []
    failed: list[str] = []
    for name, cap_s, part in parts:
        if name not in chosen:
            continue
        try:
            async with asyncio.timeout(cap_s):
                figures += await part()
        except Exception as error:
            failed.append(name)
            ctx.progress(f"sentinel {name} failed: {type(error).__name__}: {error}")
    figures.append(
        Figure("sentinel.parts_failed", float(len(failed)), "parts", note=",".join(failed))
    )
    return figures


def _chosen_parts(names: list[str]) -> set[str]:
    """``AURORA_PERF_SENTINEL_PARTS=auth,fanout`` narrows a run to those parts (default: all)."""
    wanted = {part.strip() for part in os.environ.get(PARTS_ENV, "").split(",") if part.strip()}
    unknown = wanted - set(names)
    if unknown:
        raise ValueError(f"{PARTS_ENV}: unknown part(s) {sorted(unknown)}; choose from {names}")
    return wanted or set(names)


async def _add_clients(ctx: PerfContext, ids: list[str], region: str) -> None:
    db = AuthDb.open(ctx.bench.site("a").database)
    try:
        await db.start()
        await db.add_many(ids, CHEAP.hash(PASSWORD), region)
    finally:
        await db.aclose()


async def _auth(ctx: PerfContext, samples: int) -> list[Figure]:
    ctx.progress(f"sentinel: {samples} connects through the auth callout (cold, then warm)")
    info = ctx.info
    cluster = ctx.bench.sentinel
    assert info.sentinel is not None and cluster is not None
    tag = uuid.uuid4().hex[:6]
    ids = [f"auth-{tag}-{n}" for n in range(samples)]
    db = AuthDb.open(ctx.bench.site("a").database)
    try:
        await db.start()
        for client_id in ids:  # production argon2id parameters
            await db.add(client_id, PASSWORD, "us-east")
    finally:
        await db.aclose()
    # The callouts forget credentials of rows changed since 2 s before their last poll
    # (backend.sentinel.__main__.POLL_OVERLAP): let the creations age past that.
    await asyncio.sleep(4)
    url = info.sentinel.nodes[0].nats
    # Baseline: the same TLS connect by a service user, which bypasses the callout.
    bypass: list[float] = []
    for _ in ids:
        began = time.perf_counter()
        connection = await nats_connect(url, info.ca, WORKER_USER, cluster.secrets.worker_password)
        bypass.append((time.perf_counter() - began) * 1000)
        await connection.close()
    cold: list[float] = []
    warm: list[float] = []
    for timings in (cold, warm):
        for client_id in ids:
            began = time.perf_counter()
            connection = await nats_connect(url, info.ca, client_id, PASSWORD)
            timings.append((time.perf_counter() - began) * 1000)
            await connection.close()
    redis = aioredis.from_url(ctx.bench.site("a").redis, decode_responses=True)
    try:
        entries = await redis.xrevrange(AUTH_AUDIT_STREAM, count=20 * samples)
    finally:
        await redis.aclose()
    mine = [
        fields
        for _id, fields in reversed(entries or [])
        if fields and str(fields.get("client_id", "")).startswith(f"auth-{tag}-")
    ]
    hits = [fields for fields in mine if fields.get("cached") == "true"]
    handler_hit = [float(fields["latency_ms"]) for fields in hits]
    handler_kdf = [float(f["latency_ms"]) for f in mine if f.get("cached") != "true"]
    bypass_p99 = _quantile(bypass, 0.99)
    return [
        Figure(
            "sentinel.auth_connect_p99_warm",
            _quantile(warm, 0.99),
            "ms",
            baseline=bypass_p99,
            note="seed <10, goal 5; baseline: same connect bypassing the callout",
        ),
        Figure("sentinel.auth_connect_p50_warm", _quantile(warm, 0.5), "ms"),
        Figure(
            "sentinel.auth_connect_p99_cold",
            _quantile(cold, 0.99),
            "ms",
            baseline=bypass_p99,
            note="first connect: one argon2id check",
        ),
        Figure("sentinel.auth_connect_bypass_p99", bypass_p99, "ms", note="no callout"),
        Figure(
            "sentinel.auth_cache_hits_warm",
            len(hits) / samples if samples else float("nan"),
            "ratio",
            note="warm connects answered from the verified-credential cache",
        ),
        Figure("sentinel.auth_callout_handler_p99_cached", _quantile(handler_hit, 0.99), "ms"),
        Figure("sentinel.auth_callout_handler_p99_kdf", _quantile(handler_kdf, 0.99), "ms"),
        Figure(
            "sentinel.auth_cpu_ms_per_connect",
            statistics.median(cold) - statistics.median(warm),
            "ms",
            note="cold - warm median: the KDF",
        ),
    ]


async def _varz(monitor: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5) as client:
        answer = await client.get(f"{monitor}/varz")
        data: dict[str, Any] = answer.json()
        return data


async def _connect_many(
    ctx: PerfContext,
    targets: list[tuple[str, int, str]],
    budget_s: float,
    on_message: Any = None,
    stop: asyncio.Event | None = None,
) -> tuple[list[str], float, list[asyncio.Task[None]]]:
    """Connect one MQTT client per (host, port, client id), each subscribed to its own
    topic; returns (ids connected, seconds, tasks that hold them until ``stop``)."""
    stop = stop or asyncio.Event()
    ca = ctx.info.ca
    connected = 0
    live: list[str] = []
    began = time.monotonic()
    slots = asyncio.Semaphore(64)
    ready = asyncio.Event()

    async def hold(host: str, port: int, client_id: str) -> None:
        nonlocal connected
        try:
            async with slots:
                if time.monotonic() - began > budget_s:
                    return
                client = mqtt_client(host, port, ca, client_id, PASSWORD, timeout_s=30)
                await client.__aenter__()
        except aiomqtt.MqttError:
            return
        try:
            await client.subscribe(f"clients/{client_id}/alerts", qos=1)
            connected += 1
            live.append(client_id)
            if connected == len(targets):
                ready.set()
            if on_message is None:
                await stop.wait()
                return
            waiter = asyncio.ensure_future(stop.wait())
            async for message in client.messages:
                on_message(client_id, message)
                if waiter.done():
                    break
        except aiomqtt.MqttError:
            return
        finally:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)

    tasks = [asyncio.create_task(hold(*target)) for target in targets]
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(budget_s):
            await ready.wait()
    return live, time.monotonic() - began, tasks


async def _release(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    """Close every held client (also when the part was cancelled by its cap)."""
    stop.set()
    for task in tasks:
        task.cancel()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(60):  # thousands of disconnects on a loaded loop
            await asyncio.gather(*tasks, return_exceptions=True)


async def _idle(ctx: PerfContext, count: int) -> list[Figure]:
    info = ctx.info
    assert info.sentinel is not None
    node = info.sentinel.nodes[1]
    ctx.progress(f"sentinel: {count} idle MQTT clients (QoS 1) on {node.region}")
    tag = uuid.uuid4().hex[:6]
    ids = [f"idle-{tag}-{n}" for n in range(count)]
    await _add_clients(ctx, ids, node.region)
    before = await _varz(node.monitor)
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        live, seconds, tasks = await _connect_many(
            ctx, [(node.mqtt.host, node.mqtt.port, i) for i in ids], budget_s=90, stop=stop
        )
        await asyncio.sleep(2)  # let the node settle its per-connection state
        after = await _varz(node.monitor)
    finally:
        await _release(stop, tasks)
    grown_kib = max(0, int(after.get("mem", 0)) - int(before.get("mem", 0))) / 1024
    connected = len(live)
    per_connection = grown_kib / connected if connected else float("nan")
    return [
        Figure("sentinel.idle_connections_per_node", float(connected), "connections"),
        Figure("sentinel.memory_per_connection", per_connection, "KiB"),
        Figure("sentinel.connects_per_s", connected / seconds if seconds else 0.0, "1/s"),
    ]


async def _fanout(
    ctx: PerfContext, subscribers: int, rate: float, duration_s: float, ramp_budget_s: float
) -> list[Figure]:
    info = ctx.info
    sentinel = info.sentinel
    assert sentinel is not None
    tag = uuid.uuid4().hex[:6]
    shares = {"us-east": 0.5, "eu-west": 0.3, "ap-south": 0.2}
    targets: list[tuple[str, int, str]] = []
    for node in sentinel.nodes:
        ids = [
            f"fan-{tag}-{node.region}-{n}" for n in range(int(subscribers * shares[node.region]))
        ]
        await _add_clients(ctx, ids, node.region)
        targets += [(node.mqtt.host, node.mqtt.port, client_id) for client_id in ids]
    ctx.progress(f"sentinel: {len(targets)} subscribers (50/30/20), budget {ramp_budget_s:.0f} s")
    latencies: list[float] = []
    foreign = [0]

    def on_message(client_id: str, message: aiomqtt.Message) -> None:
        body = json.loads(bytes(message.payload))  # type: ignore[arg-type]
        if body["client"] != client_id:
            foreign[0] += 1
        latencies.append((time.time() - body["sent_at"]) * 1000)

    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        return await _fan_out_measured(
            ctx,
            targets=targets,
            rate=rate,
            duration_s=duration_s,
            ramp_budget_s=ramp_budget_s,
            on_message=on_message,
            stop=stop,
            tasks=tasks,
            latencies=latencies,
            foreign=foreign,
        )
    finally:
        await _release(stop, tasks)


async def _fan_out_measured(
    ctx: PerfContext,
    *,
    targets: list[tuple[str, int, str]],
    rate: float,
    duration_s: float,
    ramp_budget_s: float,
    on_message: Any,
    stop: asyncio.Event,
    tasks: list[asyncio.Task[None]],
    latencies: list[float],
    foreign: list[int],
) -> list[Figure]:
    info = ctx.info
    sentinel = info.sentinel
    assert sentinel is not None
    live, _seconds, held = await _connect_many(
        ctx, targets, ramp_budget_s, on_message=on_message, stop=stop
    )
    tasks.extend(held)
    live = list(live)  # a snapshot: clients still connecting may join the list later
    connected = len(live)
    ctx.progress(f"sentinel: {connected} subscribed; publishing {rate:.0f} msg/s")
    origin = sentinel.origin
    context = ssl.create_default_context(cafile=info.ca)
    context.load_cert_chain(origin.publisher_cert, origin.publisher_key)
    sent = 0
    async with aiomqtt.Client(
        origin.mqtt.host, origin.mqtt.port, tls_context=context, max_queued_outgoing_messages=0
    ) as publisher:
        began = time.monotonic()
        total = int(rate * duration_s)
        for number in range(total):
            due = began + number / rate
            pause = due - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            client_id = live[number % len(live)] if live else "nobody"
            body = {"client": client_id, "n": number, "sent_at": time.time()}
            await publisher.publish(f"clients/{client_id}/alerts", json.dumps(body), qos=1)
            sent += 1
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(15):
            while len(latencies) < sent:  # noqa: ASYNC110 (counting, not signalling)
                await asyncio.sleep(0.1)
    if foreign[0]:
        raise RuntimeError(f"privacy broken: {foreign[0]} alerts reached another client")
    return [
        Figure("sentinel.fanout_subscribers", float(connected), "subscribers", note="goal 5000"),
        Figure("sentinel.fanout_p50", _quantile(latencies, 0.5), "ms"),
        Figure("sentinel.fanout_p99", _quantile(latencies, 0.99), "ms", note="seed <50"),
        Figure("sentinel.fanout_delivered", float(len(latencies)), "messages"),
        Figure("sentinel.fanout_sent", float(sent), "messages"),
    ]


async def _failover(ctx: PerfContext, rate: float) -> list[Figure]:
    bench = ctx.bench
    cluster = bench.sentinel
    info = ctx.info
    assert cluster is not None and info.sentinel is not None
    urls = [node.nats for node in info.sentinel.nodes]
    client = await nats_connect(
        urls, info.ca, WORKER_USER, cluster.secrets.worker_password, reconnect=True
    )
    js = client.jetstream(timeout=2)
    stream = await js.stream_info(STREAM)
    assert stream.cluster is not None and stream.cluster.leader
    first_leader = stream.cluster.leader
    leader = first_leader.removeprefix("sentinel-")
    ctx.progress(f"sentinel: kill -9 of the stream leader {leader} at {rate:.0f} msg/s")
    client_id = f"failover-{uuid.uuid4().hex[:6]}"
    subject = f"clients.{client_id}.alerts"
    origin = info.sentinel.origin
    context = ssl.create_default_context(cafile=info.ca)
    context.load_cert_chain(origin.publisher_cert, origin.publisher_key)
    total, kill_at = int(rate * 15), int(rate * 3)
    killed_at = 0.0
    failover_s = float("nan")

    async def watch_leader() -> None:
        nonlocal failover_s
        while True:
            await asyncio.sleep(0.1)
            if not killed_at:
                continue
            with contextlib.suppress(Exception):
                now = await js.stream_info(STREAM)
                if now.cluster and now.cluster.leader and now.cluster.leader != first_leader:
                    failover_s = time.monotonic() - killed_at
                    return

    try:
        async with asyncio.TaskGroup() as tasks:
            watcher = tasks.create_task(watch_leader())
            async with aiomqtt.Client(
                origin.mqtt.host, origin.mqtt.port, tls_context=context
            ) as publisher:
                for number in range(total):
                    if number == kill_at:
                        cluster.kill_node(leader)
                        killed_at = time.monotonic()
                    body = {"n": number, "id": uuid.uuid4().hex}
                    await publisher.publish(f"clients/{client_id}/alerts", json.dumps(body), qos=1)
                    await asyncio.sleep(1 / rate)
            async with asyncio.timeout(60):
                await watcher
    finally:
        await asyncio.to_thread(cluster.start_node, leader)
    stored = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(60):
            while stored < total:
                with contextlib.suppress(Exception):
                    state = await js.stream_info(STREAM, subjects_filter=subject)
                    stored = (state.state.subjects or {}).get(subject, 0)
                await asyncio.sleep(0.5)
    await client.close()
    return [
        Figure("sentinel.failover_time", failover_s, "s", note="new stream leader answers"),
        Figure("sentinel.failover_lost", float(max(0, total - stored)), "messages", note="goal 0"),
        Figure("sentinel.failover_duplicated", float(max(0, stored - total)), "messages"),
    ]
