"""The seed's WebSocket bridge (``--sentinel-bridge websocket``): origin alerts reach clients
over a node's ``/mqtt`` WebSocket listener, through the WAF limits, refusals counted.

The per-client rate limit is tested in ``tests/unit/sentinel/test_waf.py``: on this shared
machine the bridge itself forwards slower than the default limit, so a flood through it
does not reliably exceed the limit."""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import httpx
import pytest

from backend.sentinel.authdb import AuthDb
from bench.benchfile import SentinelInfo
from bench.services.sentinel_client import mqtt_client
from bench.site import RunningBench

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PASSWORD = "ws-bridge-test"


@pytest.fixture(scope="module")
def ws_bench(bench_factory: Any) -> RunningBench:
    bench: RunningBench = bench_factory(
        ["a"], backend=False, sentinel=True, sentinel_bridge="websocket"
    )
    return bench


@pytest.fixture
async def publisher(ws_bench: RunningBench) -> AsyncIterator[aiomqtt.Client]:
    info = ws_bench.info.sentinel
    assert info is not None
    context = ssl.create_default_context(cafile=ws_bench.info.ca)
    context.load_cert_chain(info.origin.publisher_cert, info.origin.publisher_key)
    async with aiomqtt.Client(
        info.origin.mqtt.host,
        info.origin.mqtt.port,
        tls_context=context,
        protocol=aiomqtt.ProtocolVersion.V5,
        identifier=f"publisher-{uuid.uuid4().hex[:6]}",
    ) as client:
        yield client


async def _refused(bench: RunningBench, reason: str) -> float:
    cluster = bench.sentinel
    assert cluster is not None
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{cluster.wsbridge_metrics_port}/")).text
    for line in text.splitlines():
        if line.startswith("sentinel_wsbridge_refused_total") and f'reason="{reason}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_alerts_cross_the_websocket_bridge_and_the_waf_refuses_oversize(
    ws_bench: RunningBench, publisher: aiomqtt.Client
) -> None:
    sentinel: SentinelInfo | None = ws_bench.info.sentinel
    assert sentinel is not None
    client_id = f"ws-{uuid.uuid4().hex[:6]}"
    db = AuthDb.open(ws_bench.site("a").database)
    try:
        await db.start()
        await db.add(client_id, PASSWORD, "us-east")
    finally:
        await db.aclose()
    node = sentinel.nodes[0]
    topic = f"clients/{client_id}/alerts"
    got: list[dict[str, Any]] = []
    async with mqtt_client(
        node.mqtt.host, node.mqtt.port, ws_bench.info.ca, client_id, PASSWORD
    ) as c:
        await c.subscribe(topic, qos=1)
        # Until the first alert arrives the bridge may still be connecting: resend.
        async with asyncio.timeout(120):
            while not got:
                await publisher.publish(topic, json.dumps({"n": -1}).encode(), qos=1)
                try:
                    async with asyncio.timeout(1):
                        async for message in c.messages:
                            got.append(json.loads(bytes(message.payload)))
                            break
                except TimeoutError:
                    continue
        oversize = json.dumps({"n": 0, "pad": "x" * 5000}).encode()
        await publisher.publish(topic, oversize, qos=1)
        await publisher.publish(topic, json.dumps({"n": 1}).encode(), qos=1)
        async with asyncio.timeout(30):
            async for message in c.messages:
                body = json.loads(bytes(message.payload))
                if body["n"] == -1:
                    continue  # a resend of the warm-up alert
                got.append(body)
                break
    assert got[-1] == {"n": 1}, "the oversize alert must not arrive"
    assert await _refused(ws_bench, "oversize") == 1
