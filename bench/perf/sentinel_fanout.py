"""The Sentinel fan-out figure (seed 003): subscribers spread 50/30/20 over the regions,
each on its own topic at QoS 1 with a persistent-session-style subscription; a publisher
sends ``rate`` msg/s through the origin Mosquitto; latency is origin publish -> subscriber
receipt (one clock). Subscribers that connected within the budget are the figure's N (the
issue's goal is 5,000). Next to the latency it reports where a shortfall comes from: the
rate the publisher achieved, what the worker stored, what the QoS 1 feeds (one
``$MQTT_msgs`` per client shard account) still hold unacknowledged, and the CPU of the
simulator process and of the nodes.

The figure never passes vacuously: latency quantiles cover the alerts delivered, so
``sentinel.fanout_missing`` (expected - delivered, distinct alerts) says what they do not
cover, and the quantiles' notes say "INCOMPLETE" when anything is missing; a run in which
no subscriber connected fails the part.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
import uuid
from dataclasses import dataclass, field

import aiomqtt
from nats.js.errors import NotFoundError

from backend.sentinel.delivery import QOS1_STREAM
from backend.sentinel.naming import STREAM
from backend.sentinel.shards import feed_user
from bench.perf.figures import Figure
from bench.perf.runner import PerfContext
from bench.perf.sentinel_fleet import add_clients, connect_many, quantile, release, varz
from bench.services.sentinel_client import nats_connect
from bench.services.sentinel_config import WORKER_USER

#: How long deliveries may trail the last publish and still count.
DRAIN_S = 30.0
#: QoS 1 publishes the origin publisher keeps in flight.
PUBLISH_WINDOW = 64


@dataclass
class Tally:
    """What the subscribers received: first-delivery latencies, repeats, misdirected."""

    latencies: list[float] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)
    duplicates: int = 0
    foreign: int = 0

    def receive(self, client_id: str, message: aiomqtt.Message) -> None:
        """Count one delivery to ``client_id`` (latency on the alert's first delivery only)."""
        body = json.loads(bytes(message.payload))  # type: ignore[arg-type]
        if body["client"] != client_id:
            self.foreign += 1
        if body["n"] in self.seen:  # a QoS 1 redelivery: allowed, counted apart
            self.duplicates += 1
            return
        self.seen.add(body["n"])
        self.latencies.append((time.time() - body["sent_at"]) * 1000)


def completeness(delivered: int, expected: int) -> str:
    """The quantiles' note: what share of the expected alerts they cover."""
    if expected and delivered >= expected:
        return f"all {expected} alerts delivered"
    return f"INCOMPLETE: {delivered} of {expected} alerts delivered"


async def fanout(
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
        await add_clients(ctx, ids, node.region)
        targets += [(node.mqtt.host, node.mqtt.port, client_id) for client_id in ids]
    ctx.progress(f"sentinel: {len(targets)} subscribers (50/30/20), budget {ramp_budget_s:.0f} s")
    tally = Tally()
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        return await _fan_out_measured(
            ctx,
            targets=targets,
            rate=rate,
            duration_s=duration_s,
            ramp_budget_s=ramp_budget_s,
            tally=tally,
            stop=stop,
            tasks=tasks,
        )
    finally:
        await release(stop, tasks)


async def _fan_out_measured(
    ctx: PerfContext,
    *,
    targets: list[tuple[str, int, str]],
    rate: float,
    duration_s: float,
    ramp_budget_s: float,
    tally: Tally,
    stop: asyncio.Event,
    tasks: list[asyncio.Task[None]],
) -> list[Figure]:
    info = ctx.info
    sentinel = info.sentinel
    assert sentinel is not None
    live, _seconds, held = await connect_many(
        ctx, targets, ramp_budget_s, on_message=tally.receive, stop=stop
    )
    tasks.extend(held)
    live = list(live)  # a snapshot: clients still connecting may join the list later
    connected = len(live)
    if not connected:
        raise RuntimeError(f"no subscriber of {len(targets)} connected within the budget")
    ctx.progress(f"sentinel: {connected} subscribed; publishing {rate:.0f} msg/s")
    origin = sentinel.origin
    context = ssl.create_default_context(cafile=info.ca)
    context.load_cert_chain(origin.publisher_cert, origin.publisher_key)
    sent = 0
    stored_before, _feed = await _stream_counts(ctx)
    cpu_began, wall_began = time.process_time(), time.monotonic()
    async with (
        aiomqtt.Client(
            origin.mqtt.host,
            origin.mqtt.port,
            tls_context=context,
            max_queued_outgoing_messages=0,
            max_inflight_messages=PUBLISH_WINDOW,
        ) as publisher,
        asyncio.TaskGroup() as publishes,
    ):
        # QoS 1 publishes in flight together (a window, as a real publisher pipelines):
        # one at a time, the PUBACK round trip capped the rate at ~143/s on the loaded box.
        window = asyncio.Semaphore(PUBLISH_WINDOW)

        async def publish(topic: str, payload: str) -> None:
            nonlocal sent
            try:
                await publisher.publish(topic, payload, qos=1)
                sent += 1
            finally:
                window.release()

        began = time.monotonic()
        total = int(rate * duration_s)
        for number in range(total):
            due = began + number / rate
            pause = due - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            client_id = live[number % len(live)]
            body = {"client": client_id, "n": number, "sent_at": time.time()}
            await window.acquire()
            publishes.create_task(publish(f"clients/{client_id}/alerts", json.dumps(body)))
    publish_s = time.monotonic() - began  # until the last PUBACK
    nodes_cpu = sum([float((await varz(node.monitor)).get("cpu", 0)) for node in sentinel.nodes])
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DRAIN_S):
            while len(tally.latencies) < sent:  # noqa: ASYNC110 (counting, not signalling)
                await asyncio.sleep(0.1)
    simulator_cpu = (time.process_time() - cpu_began) / (time.monotonic() - wall_began)
    stored_after, unacked = await _stream_counts(ctx)
    if tally.foreign:
        raise RuntimeError(f"privacy broken: {tally.foreign} alerts reached another client")
    latencies, delivered = tally.latencies, len(tally.latencies)
    coverage = completeness(delivered, sent)
    if delivered < sent:
        ctx.progress(f"sentinel fan-out: {coverage} within {DRAIN_S:.0f} s")
    return [
        Figure(
            "sentinel.fanout_subscribers",
            float(connected),
            "subscribers",
            note=f"goal 5000; {len(targets)} asked",
        ),
        Figure("sentinel.fanout_p50", quantile(latencies, 0.5), "ms", note=coverage),
        Figure(
            "sentinel.fanout_p99",
            quantile(latencies, 0.99),
            "ms",
            note=f"seed <50, goal 10; {coverage}",
        ),
        Figure(
            "sentinel.fanout_delivered",
            float(delivered),
            "messages",
            note=f"distinct alerts within {DRAIN_S:.0f} s of the last publish",
        ),
        Figure("sentinel.fanout_expected", float(sent), "messages", note="published"),
        Figure(
            "sentinel.fanout_missing",
            float(sent - delivered),
            "messages",
            note="goal 0: expected - delivered (the quantiles do not cover these)",
        ),
        Figure(
            "sentinel.fanout_duplicates",
            float(tally.duplicates),
            "messages",
            note="QoS 1 redeliveries (allowed, not in the quantiles)",
        ),
        Figure("sentinel.fanout_sent", float(sent), "messages"),
        Figure(
            "sentinel.fanout_rate_achieved",
            sent / publish_s if publish_s else 0.0,
            "msg/s",
            note=f"asked {rate:.0f}",
        ),
        Figure(
            "sentinel.fanout_stored",
            float(stored_after - stored_before),
            "messages",
            note="in MQTT_ALERTS: the worker kept up",
        ),
        Figure(
            "sentinel.fanout_unacked_at_end",
            float(unacked),
            "messages",
            note="left in the shards' $MQTT_msgs: QoS 1 deliveries not yet acknowledged",
        ),
        Figure(
            "sentinel.fanout_simulator_cpu",
            simulator_cpu,
            "cores",
            note="subscriber fleet + publisher process, one asyncio loop",
        ),
        Figure("sentinel.fanout_nodes_cpu", nodes_cpu, "%", note="sum of the 3 nodes (/varz)"),
    ]


async def _stream_counts(ctx: PerfContext) -> tuple[int, int]:
    """Messages in ``MQTT_ALERTS`` and in the QoS 1 feeds (every shard's ``$MQTT_msgs``,
    0 where absent)."""
    cluster, sentinel = ctx.bench.sentinel, ctx.info.sentinel
    assert cluster is not None and sentinel is not None
    urls = [node.nats for node in sentinel.nodes]
    password = cluster.secrets.worker_password
    client = await nats_connect(urls, ctx.info.ca, WORKER_USER, password)
    try:
        alerts = (await client.jetstream(timeout=10).stream_info(STREAM)).state.messages
    finally:
        await client.close()
    feed = 0
    for index in range(cluster.shards):
        shard = await nats_connect(urls, ctx.info.ca, feed_user(index), password)
        try:
            feed += (await shard.jetstream(timeout=10).stream_info(QOS1_STREAM)).state.messages
        except NotFoundError:
            pass
        finally:
            await shard.close()
    return alerts, feed
