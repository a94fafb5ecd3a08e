"""The Sentinel against a real three-node cluster the bench starts (seed 003, issue 13).

One cluster for the module (``backend=False``: the Sentinel needs the site's Mosquitto,
Redis and database, not its backend). Clients are created in the Auth DB the callout reads.
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
import nats
import pytest
import redis.asyncio as aioredis
from nats.js.api import DiscardPolicy, StorageType

from backend.sentinel.authdb import AuthDb
from backend.sentinel.naming import AUTH_AUDIT_STREAM, STREAM
from bench.benchfile import SentinelInfo
from bench.services.sentinel_client import mqtt_client, nats_connect
from bench.services.sentinel_config import WORKER_USER
from bench.site import RunningBench

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PASSWORD = "pa55-wörd\u202e"  # odd bytes survive the whole path


@pytest.fixture(scope="module")
def sentinel_bench(bench_factory: Any) -> Iterator[RunningBench]:
    bench: RunningBench = bench_factory(["a"], backend=False, sentinel=True)
    yield bench


@pytest.fixture(scope="module")
def info(sentinel_bench: RunningBench) -> SentinelInfo:
    sentinel = sentinel_bench.info.sentinel
    assert sentinel is not None
    return sentinel


async def _add(bench: RunningBench, client_id: str, password: str = PASSWORD) -> None:
    db = AuthDb.open(bench.site("a").database)
    try:
        await db.start()
        await db.add(client_id, password, "eu-west")
    finally:
        await db.aclose()


async def _disable(bench: RunningBench, client_id: str) -> None:
    db = AuthDb.open(bench.site("a").database)
    try:
        assert await db.set_enabled(client_id, False)
    finally:
        await db.aclose()


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _audit(bench: RunningBench, client_id: str, count: int = 1) -> list[dict[str, str]]:
    """The audit entries of ``client_id`` once ``count`` exist (polls the stream)."""
    redis = aioredis.from_url(bench.site("a").redis, decode_responses=True)
    try:
        async with asyncio.timeout(20):
            while True:
                entries = await redis.xrange(AUTH_AUDIT_STREAM)
                mine = [fields for _id, fields in entries if fields["client_id"] == client_id]
                if len(mine) >= count:
                    return mine
                await asyncio.sleep(0.1)
    finally:
        await redis.aclose()


def _ws(info: SentinelInfo, index: int = 0) -> tuple[str, int]:
    host_port = info.nodes[index].websocket.split("//")[1].split("/")[0]
    host, _, port = host_port.partition(":")
    return host, int(port)


@pytest.fixture
async def publisher(sentinel_bench: RunningBench, info: SentinelInfo) -> AsyncIterator[Any]:
    """An MQTT client of the origin Mosquitto with the alert publisher's own certificate."""
    origin = info.origin
    context = ssl.create_default_context(cafile=sentinel_bench.info.ca)
    context.load_cert_chain(origin.publisher_cert, origin.publisher_key)
    async with aiomqtt.Client(
        origin.mqtt.host,
        origin.mqtt.port,
        tls_context=context,
        protocol=aiomqtt.ProtocolVersion.V5,
        identifier=_unique("publisher"),
    ) as client:
        yield client


# -- the cluster --------------------------------------------------------------------------


async def test_three_regions_with_the_seeds_stream(
    sentinel_bench: RunningBench, info: SentinelInfo
) -> None:
    assert [node.region for node in info.nodes] == ["us-east", "eu-west", "ap-south"]
    assert all(node.websocket.endswith("/mqtt") for node in info.nodes)
    assert info.stream == STREAM
    cluster = sentinel_bench.sentinel
    assert cluster is not None
    client = await nats_connect(
        info.nodes[2].nats, sentinel_bench.info.ca, WORKER_USER, cluster.secrets.worker_password
    )
    try:
        stream = await client.jetstream().stream_info(STREAM)
    finally:
        await client.close()
    config = stream.config
    assert config.subjects == ["clients.*.alerts"]
    assert config.max_age == 72 * 3600
    assert config.num_replicas == 3
    assert StorageType(config.storage) is StorageType.FILE
    assert DiscardPolicy(config.discard) is DiscardPolicy.OLD
    assert stream.cluster is not None
    assert len(stream.cluster.replicas or []) == 2


async def test_external_listeners_refuse_tls_below_1_3(
    info: SentinelInfo, sentinel_bench: RunningBench
) -> None:
    context = ssl.create_default_context(cafile=sentinel_bench.info.ca)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    mqtt = info.nodes[0].mqtt
    with pytest.raises(ssl.SSLError):
        _reader, writer = await asyncio.open_connection(mqtt.host, mqtt.port, ssl=context)
        writer.close()


# -- allow / deny ---------------------------------------------------------------------------


async def test_a_good_client_connects_over_nats_mqtt_and_websocket(
    sentinel_bench: RunningBench, info: SentinelInfo
) -> None:
    client_id = _unique("good")
    await _add(sentinel_bench, client_id)
    ca = sentinel_bench.info.ca
    connection = await nats_connect(info.nodes[0].nats, ca, client_id, PASSWORD)
    await connection.close()
    mqtt = info.nodes[1].mqtt
    async with mqtt_client(mqtt.host, mqtt.port, ca, client_id, PASSWORD) as client:
        await client.subscribe(f"clients/{client_id}/alerts", qos=1)
    host, port = _ws(info, 2)
    async with mqtt_client(host, port, ca, client_id, PASSWORD, websocket=True) as client:
        await client.subscribe(f"clients/{client_id}/alerts", qos=1)
    entries = await _audit(sentinel_bench, client_id, 3)
    assert {entry["result"] for entry in entries} == {"allowed"}
    cluster = sentinel_bench.sentinel
    assert cluster is not None
    allowed = 0.0
    async with httpx.AsyncClient() as http:
        for port in cluster.callout_metrics_ports:
            text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
            for line in text.splitlines():
                if line.startswith("sentinel_auth_decisions_total") and 'result="allowed"' in line:
                    allowed += float(line.rsplit(" ", 1)[1])
    assert allowed >= 3  # counted in Prometheus as well as audited
    assert {entry["client_type"] for entry in entries} == {"nats", "mqtt"}
    assert all(entry["remote"] == "127.0.0.1" for entry in entries)
    assert all(float(entry["latency_ms"]) >= 0 for entry in entries)


@pytest.mark.parametrize("kind", ["wrong", "disabled", "unknown", "bad_id"])
async def test_bad_clients_are_refused_on_every_protocol(
    sentinel_bench: RunningBench, info: SentinelInfo, kind: str
) -> None:
    client_id = _unique(kind)
    password = PASSWORD
    reason = {
        "wrong": "bad_password",
        "disabled": "disabled",
        "unknown": "unknown_client",
        "bad_id": "bad_client_id",
    }[kind]
    if kind in ("wrong", "disabled"):
        await _add(sentinel_bench, client_id)
    if kind == "wrong":
        password = "not-" + PASSWORD
    if kind == "disabled":
        await _disable(sentinel_bench, client_id)
    if kind == "bad_id":
        client_id = f"{client_id}.>"
    ca = sentinel_bench.info.ca
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats_connect(info.nodes[0].nats, ca, client_id, password)
    mqtt = info.nodes[1].mqtt
    with pytest.raises(aiomqtt.MqttError):
        async with mqtt_client(mqtt.host, mqtt.port, ca, client_id, password):
            pass
    host, port = _ws(info, 2)
    with pytest.raises(aiomqtt.MqttError):
        async with mqtt_client(host, port, ca, client_id, password, websocket=True):
            pass
    entries = await _audit(sentinel_bench, client_id, 3)
    assert {entry["result"] for entry in entries} == {"denied"}
    assert {entry["reason"] for entry in entries} == {reason}


async def test_another_clients_topic_is_refused(
    sentinel_bench: RunningBench, info: SentinelInfo
) -> None:
    client_id = _unique("nosy")
    await _add(sentinel_bench, client_id)
    ca = sentinel_bench.info.ca
    errors: list[Exception] = []

    async def on_error(error: Exception) -> None:
        errors.append(error)

    connection = await nats_connect(info.nodes[0].nats, ca, client_id, PASSWORD, error_cb=on_error)
    try:
        await connection.subscribe("clients.victim.alerts")
        await connection.subscribe("clients.*.alerts")
        await connection.flush()
        async with asyncio.timeout(10):
            while len(errors) < 2:
                await asyncio.sleep(0.05)
    finally:
        await connection.close()
    assert all("permissions violation" in str(error).lower() for error in errors), errors
    mqtt = info.nodes[0].mqtt
    async with mqtt_client(mqtt.host, mqtt.port, ca, client_id, PASSWORD) as client:
        granted = await client.subscribe(f"clients/{client_id}/alerts", qos=1)
        refused = await client.subscribe("clients/victim/alerts", qos=1)
        wildcard = await client.subscribe("clients/+/alerts", qos=1)
        internal = await client.subscribe("$MQTT/sub/#", qos=1)  # others' QoS 1 deliveries
    assert not granted[0].is_failure
    assert internal[0].is_failure
    assert refused[0].is_failure
    assert wildcard[0].is_failure


# -- origin -> bridge -> ingress -> worker -> stream -> subscribers -------------------------


async def test_each_client_receives_its_own_alerts_and_never_anothers(
    sentinel_bench: RunningBench, info: SentinelInfo, publisher: aiomqtt.Client
) -> None:
    ca = sentinel_bench.info.ca
    clients = [_unique("fan") for _ in range(6)]
    for client_id in clients:
        await _add(sentinel_bench, client_id)
    per_client = 5
    received: dict[str, list[dict[str, Any]]] = {client_id: [] for client_id in clients}
    subscribed = asyncio.Event()
    ready = [0]

    async def subscriber(index: int, client_id: str) -> None:
        node = info.nodes[index % 3]
        async with mqtt_client(node.mqtt.host, node.mqtt.port, ca, client_id, PASSWORD) as c:
            await c.subscribe(f"clients/{client_id}/alerts", qos=1)
            ready[0] += 1
            if ready[0] == len(clients):
                subscribed.set()
            async for message in c.messages:
                received[client_id].append(
                    {"topic": str(message.topic), **json.loads(bytes(message.payload))}
                )
                if len(received[client_id]) == per_client:
                    return

    async with asyncio.timeout(60), asyncio.TaskGroup() as tasks:
        for index, client_id in enumerate(clients):
            tasks.create_task(subscriber(index, client_id))
        await subscribed.wait()
        for number in range(per_client):
            for client_id in clients:
                body = {"client": client_id, "n": number, "id": uuid.uuid4().hex}
                await publisher.publish(
                    f"clients/{client_id}/alerts", json.dumps(body).encode(), qos=1
                )
    for client_id, messages in received.items():
        assert [m["n"] for m in messages] == list(range(per_client))
        assert {m["client"] for m in messages} == {client_id}
        assert {m["topic"] for m in messages} == {f"clients/{client_id}/alerts"}


# -- failure: node loss, callout loss -------------------------------------------------------


async def _worker_client(bench: RunningBench, url: str | list[str]) -> Any:
    cluster = bench.sentinel
    assert cluster is not None
    return await nats_connect(
        url, bench.info.ca, WORKER_USER, cluster.secrets.worker_password, reconnect=True
    )


async def _stored(bench: RunningBench, urls: list[str], subject: str, want: int) -> list[int]:
    """The ``n`` of every message stored under ``subject`` once ``want`` are there."""
    client = await _worker_client(bench, urls)
    try:
        js = client.jetstream(timeout=10)
        async with asyncio.timeout(120):
            while True:
                try:
                    info = await js.stream_info(STREAM, subjects_filter=subject)
                    stored = (info.state.subjects or {}).get(subject, 0)
                except (TimeoutError, nats.errors.Error):
                    stored = 0
                if stored >= want:
                    break
                await asyncio.sleep(0.2)
        numbers: list[int] = []
        subscription = await js.pull_subscribe(subject, stream=STREAM)
        while len(numbers) < stored:
            for message in await subscription.fetch(100, timeout=10):
                numbers.append(json.loads(message.data)["n"])
                await message.ack()
        return numbers
    finally:
        await client.close()


async def test_killing_the_stream_leader_loses_and_duplicates_nothing(
    sentinel_bench: RunningBench, info: SentinelInfo, publisher: aiomqtt.Client
) -> None:
    cluster = sentinel_bench.sentinel
    assert cluster is not None
    urls = [node.nats for node in info.nodes]
    client = await _worker_client(sentinel_bench, urls)
    leader = ""
    try:
        async with asyncio.timeout(90):  # a loaded machine may answer slowly
            while not leader:
                try:
                    stream = await client.jetstream(timeout=10).stream_info(STREAM)
                except nats.errors.Error:
                    continue
                if stream.cluster is not None and stream.cluster.leader:
                    leader = stream.cluster.leader.removeprefix("sentinel-")
    finally:
        await client.close()
    client_id = _unique("failover")
    await _add(sentinel_bench, client_id)  # an unknown addressee would be quarantined
    total, kill_at = 300, 100
    try:
        for number in range(total):
            if number == kill_at:
                cluster.kill_node(leader)  # SIGKILL mid-run, the stream leader
            body = {"n": number, "id": uuid.uuid4().hex}
            await publisher.publish(f"clients/{client_id}/alerts", json.dumps(body).encode(), qos=1)
            await asyncio.sleep(0.01)
    finally:
        await asyncio.to_thread(cluster.start_node, leader)
    numbers = await _stored(sentinel_bench, urls, f"clients.{client_id}.alerts", total)
    assert sorted(numbers) == list(range(total)), "lost or duplicated alerts"


async def test_with_the_callout_down_connects_are_refused_not_hung(
    sentinel_bench: RunningBench, info: SentinelInfo
) -> None:
    cluster = sentinel_bench.sentinel
    assert cluster is not None
    client_id = _unique("orphan")
    await _add(sentinel_bench, client_id)
    for callout in cluster.callouts:
        callout.kill()
    try:
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats_connect(info.nodes[0].nats, sentinel_bench.info.ca, client_id, PASSWORD)
        mqtt = info.nodes[1].mqtt
        with pytest.raises(aiomqtt.MqttError):
            async with mqtt_client(
                mqtt.host, mqtt.port, sentinel_bench.info.ca, client_id, PASSWORD
            ):
                pass
    finally:
        for callout in cluster.callouts:
            await asyncio.to_thread(cluster.start_process, callout)
    # Back up: the same client connects again.
    connection = await nats_connect(info.nodes[0].nats, sentinel_bench.info.ca, client_id, PASSWORD)
    await connection.close()


# -- the CLI --------------------------------------------------------------------------------

#: How soon a disable must refuse connects: the callouts poll the Auth DB every second
#: (AURORA_SENTINEL_AUTH_REVOKE_POLL_S); the cache TTL (60 s) is the worst case without it.
REVOKE_BOUND_S = 15.0


async def _refused_within(bound_s: float, url: str, ca: Any, user: str, password: str) -> float:
    """Seconds until connects of ``user`` are refused (fails the test past ``bound_s``)."""
    began = asyncio.get_running_loop().time()
    async with asyncio.timeout(bound_s):
        while True:
            try:
                connection = await nats_connect(url, ca, user, password)
            except nats.errors.Error as error:
                assert "Authorization Violation" in str(error)
                return asyncio.get_running_loop().time() - began
            await connection.close()
            await asyncio.sleep(0.1)


async def test_a_disabled_client_is_refused_soon_although_its_credential_was_cached(
    sentinel_bench: RunningBench, info: SentinelInfo
) -> None:
    client_id = _unique("revoked")
    await _add(sentinel_bench, client_id)
    ca = sentinel_bench.info.ca
    # The callouts drop cached credentials of rows changed since 2 s before their last poll;
    # let the creation age past that, so what follows is answered from the cache.
    await asyncio.sleep(5)
    for _ in range(4):  # the first verifies (KDF) and tells the other callout
        connection = await nats_connect(info.nodes[0].nats, ca, client_id, PASSWORD)
        await connection.close()
    before = await _audit(sentinel_bench, client_id, 4)
    assert [entry["cached"] for entry in before] == ["false", "true", "true", "true"]
    await _disable(sentinel_bench, client_id)
    await _refused_within(REVOKE_BOUND_S, info.nodes[1].nats, ca, client_id, PASSWORD)
    after = await _audit(sentinel_bench, client_id, 5)
    assert after[-1]["reason"] == "disabled"
    assert after[-1]["cached"] == "false"


async def test_cli_adds_watches_and_disables_a_client(
    sentinel_bench: RunningBench, info: SentinelInfo, publisher: aiomqtt.Client
) -> None:
    from click.testing import CliRunner

    from bench.cmd_sentinel import sentinel

    state = str(sentinel_bench.state_dir)
    runner = CliRunner()
    client_id = _unique("cli")
    added = await asyncio.to_thread(
        runner.invoke,
        sentinel,
        ["client", "add", client_id, "--region", "ap-south", "--state-dir", state],
    )
    assert added.exit_code == 0, added.output
    credentials = json.loads(added.output)
    assert credentials["username"] == client_id
    assert credentials["region"] == "ap-south"
    assert credentials["mqtt"]["port"] == info.node("ap-south").mqtt.port
    assert credentials["mqtt"]["topic"] == f"clients/{client_id}/alerts"

    watching = asyncio.create_task(
        asyncio.to_thread(
            runner.invoke, sentinel, ["watch", client_id, "--count", "1", "--state-dir", state]
        )
    )
    sent = 0
    async with asyncio.timeout(60):
        while not watching.done():  # publish until the watcher has subscribed and got one
            # Each body its own: an identical one is the same alert (same Nats-Msg-Id) and
            # is stored, hence delivered at QoS 1, once.
            body = json.dumps({"hello": client_id, "n": sent}).encode()
            await publisher.publish(f"clients/{client_id}/alerts", body, qos=1)
            sent += 1
            await asyncio.sleep(0.5)
    watched = await watching
    assert watched.exit_code == 0, watched.output
    payload = json.loads(watched.output.strip().splitlines()[-1])["payload"]
    assert payload["hello"] == client_id and 0 <= payload["n"] < sent

    disabled = await asyncio.to_thread(
        runner.invoke, sentinel, ["client", "disable", client_id, "--state-dir", state]
    )
    assert disabled.exit_code == 0, disabled.output
    # The callouts cached the watcher's credential; disabling drops it within one Auth DB
    # poll (1 s; the bound allows for a loaded machine and stays well below the 60 s TTL,
    # so it is the poll, not the expiry, that refuses).
    waited = await _refused_within(
        REVOKE_BOUND_S,
        info.nodes[0].nats,
        sentinel_bench.info.ca,
        client_id,
        credentials["password"],
    )
    print(f"disable took effect after {waited:.2f} s")
    bad = await asyncio.to_thread(
        runner.invoke, sentinel, ["client", "add", "bad.id", "--state-dir", state]
    )
    assert bad.exit_code != 0
    assert "not valid" in bad.output
