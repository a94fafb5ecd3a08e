"""The aurora_auth plugin's cost: token clients through the policy service, devices' checks.

Two brokers configured as a site's are started here, outside the site, beside a stand-in
policy service (:class:`~bench.policy_probe.FakePolicyService`, which answers superuser
"no" and ACL "yes", so every uncached publish asks both questions, as go-auth does):

* ``policy_mqtt.publish.cached`` / ``.uncached`` — QoS 1 messages per second from a token
  client (``mosquitto_pub -l``, the token as password) through the plugin to a subscriber,
  with the decision cache on and off. Baseline: the same broker's certificate listener in
  the same run (a probe publishing the same messages), so the ratio is what the token path
  keeps of the certificate path (goal >= 0.8 cached). Uncached, each message costs two
  HTTP round trips on the broker's one thread, so that figure is bounded by the policy
  service (a Python stand-in here).
* ``device.delivery.subscribe_checked`` — messages per second delivered to a device on its
  command topic by the broker with the plugin (the device rules applied in C, per delivered
  message); baseline: the broker applying the ACL file itself, as before the plugin.
* ``device.subscribe.checked`` — SUBSCRIBE/SUBACK round trips per second of a device on its
  own command topic with the plugin checking subscriptions; baseline: the ACL-file broker,
  which grants every subscription unchecked (issue #11.2's hole).
* ``policy_mqtt.connect_jwt.*`` — token client connects through the running site's token
  listener and its real policy service (:mod:`bench.perf.policy_connect`).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.errors import BenchError
from bench.load.clients import MeasurementError
from bench.perf.figures import Figure
from bench.perf.mqtt_lines import LineCounter, LinePublisher, line_throughput
from bench.perf.policy_connect import measure_connects
from bench.perf.runner import PerfContext
from bench.pki import CertPair, Pki
from bench.policy_probe import (
    FakePolicyService,
    PolicyBroker,
    start_policy_broker,
    token_client,
)
from bench.services.config import PROBE_IDENTITY
from bench.services.local import LOOPBACK

TOPIC = "aurora/perf/policy"
DEVICE = "esp32s3-perf-policy"
#: Uncached, every message asks the Python stand-in twice: keep that run short.
UNCACHED_MESSAGES_MAX = 3_000
SUBSCRIBES = 300
DRAIN_TIMEOUT_S = 120.0


def _tools() -> tuple[str, str]:
    pub, sub = shutil.which("mosquitto_pub"), shutil.which("mosquitto_sub")
    if not pub or not sub:
        raise BenchError("mosquitto_pub/mosquitto_sub missing: apt-get install mosquitto-clients")
    return pub, sub


def _cert_args(pki: Pki, pair: CertPair, port: int, client_id: str) -> list[str]:
    return [
        *("-V", "mqttv5", "-h", LOOPBACK, "-p", str(port), "-q", "1", "-i", client_id),
        *("--cafile", str(pki.ca_cert), "--cert", str(pair.cert), "--key", str(pair.key)),
    ]


def _token_args(pki: Pki, port: int, client_id: str, username: str) -> list[str]:
    return [
        *("-V", "mqttv5", "-h", LOOPBACK, "-p", str(port), "-q", "1", "-i", client_id),
        *("--cafile", str(pki.ca_cert), "-u", username, "-P", "perf-token"),
    ]


def _throughput(publisher_args: Sequence[str], counter: LineCounter, messages: int) -> float:
    """Messages per second through the broker (bench/perf/mqtt_lines.line_throughput)."""
    publisher = LinePublisher(publisher_args, TOPIC)
    try:
        return line_throughput(publisher, counter, b"x", messages, DRAIN_TIMEOUT_S)
    finally:
        publisher.close()


def _subscribe_rate(broker: PolicyBroker, pair: CertPair, count: int) -> float:
    with token_client(
        LOOPBACK,
        broker.mqtt_port,
        broker.pki.ca_cert,
        username=None,
        password=None,
        client_id=DEVICE,
        client_cert=(pair.cert, pair.key),
    ) as client:
        if client.connack != 0:
            raise MeasurementError(f"device refused at CONNECT: reason {client.connack}")
        topic = f"aurora/access/{DEVICE}/command"
        began = time.perf_counter()
        for _ in range(count):
            if client.subscribe(topic) >= 128:
                raise MeasurementError(f"device refused its own command topic {topic}")
        return count / (time.perf_counter() - began)


def _device_delivery(broker: PolicyBroker, device: CertPair, probe: CertPair, n: int) -> float:
    topic = f"aurora/access/{DEVICE}/command"
    counter = LineCounter(_cert_args(broker.pki, device, broker.mqtt_port, DEVICE), topic)
    try:
        # mosquitto_sub subscribes right after connecting; a warm-up proves it is in.
        publisher = _cert_args(broker.pki, probe, broker.mqtt_port, "perf-cmd")
        process = subprocess.Popen(
            [_tools()[0], *publisher, "-t", topic, "-l"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert process.stdin is not None
        try:
            deadline = time.monotonic() + 30
            while not counter.times:
                if time.monotonic() > deadline:
                    raise MeasurementError("the device never received a warm-up command")
                process.stdin.write(b"warm-up\n")
                process.stdin.flush()
                time.sleep(0.2)
            start = len(counter.times)
            process.stdin.write(b"c\n" * n)
            process.stdin.flush()
            counter.wait_count(start + n, DRAIN_TIMEOUT_S)
            span = counter.times[start + n - 1] - counter.times[start - 1]
            return n / span if span > 0 else float("inf")
        finally:
            process.stdin.close()
            process.wait(timeout=30)
    finally:
        counter.close()


def _measure(pki: Pki, work: Path, messages: int, subscribes: int) -> list[Figure]:
    probe = pki.service(PROBE_IDENTITY)
    device = pki.device(DEVICE)
    policy = FakePolicyService().start()
    policy.behaviour.status = {"/mqtt/superuser": 403}
    figures: list[Figure] = []
    try:
        publish: dict[bool, tuple[float, float]] = {}
        for cache in (True, False):
            broker = start_policy_broker(work / f"cache-{cache}", pki, policy.port, cache=cache)
            counter = LineCounter(_cert_args(pki, probe, broker.mqtt_port, "perf-sink"), TOPIC)
            try:
                count = messages if cache else min(messages, UNCACHED_MESSAGES_MAX)
                assert broker.token_port is not None
                token = _token_args(pki, broker.token_port, "perf-token", "svc-perf")
                cert = _cert_args(pki, probe, broker.mqtt_port, "perf-cert")
                publish[cache] = (
                    _throughput(token, counter, count),
                    _throughput(cert, counter, count),
                )
            finally:
                counter.close()
                broker.stop()
        notes = {
            True: "token client, decision cache on; baseline: certificate listener, same "
            "broker (goal: at least 0.8 of the baseline)",
            False: "token client, every publish asks superuser + ACL over HTTP (a Python "
            "stand-in service); baseline: certificate listener, same broker",
        }
        for cache, label in ((True, "cached"), (False, "uncached")):
            value, baseline = publish[cache]
            figures.append(
                Figure(
                    f"policy_mqtt.publish.{label}",
                    round(value),
                    "msg/s",
                    round(baseline),
                    note=notes[cache],
                )
            )
        plugin = start_policy_broker(work / "devices-plugin", pki, policy.port)
        try:
            delivery = _device_delivery(plugin, device, probe, messages)
            subscribe = _subscribe_rate(plugin, device, subscribes)
        finally:
            plugin.stop()
        acl_file = start_policy_broker(work / "devices-acl-file", pki, None)
        try:
            delivery_base = _device_delivery(acl_file, device, probe, messages)
            subscribe_base = _subscribe_rate(acl_file, device, subscribes)
        finally:
            acl_file.stop()
        figures += [
            Figure(
                "device.delivery.subscribe_checked",
                round(delivery),
                "msg/s",
                round(delivery_base),
                note="commands to a device, rules applied by the plugin; baseline: the "
                "broker applying the ACL file itself",
            ),
            Figure(
                "device.subscribe.checked",
                round(subscribe, 1),
                "subscribes/s",
                round(subscribe_base, 1),
                note="SUBSCRIBE/SUBACK round trips (paho); baseline: the ACL-file broker, "
                "which checks no subscription",
            ),
        ]
    finally:
        policy.close()
    return figures


async def measure(ctx: PerfContext) -> list[Figure]:
    """The plugin's figures (see the module docstring)."""
    # Absolute: each broker runs in its own directory and reads its config by this path.
    work = Path(tempfile.mkdtemp(prefix="policy-perf-", dir=ctx.config.output_dir.resolve()))
    messages = ctx.config.throughput_messages
    subscribes = 30 if ctx.config.quick else SUBSCRIBES
    ctx.progress(f"policy plugin: {messages} messages per path, cache on and off")
    try:
        figures = await asyncio.to_thread(_measure, ctx.pki, work, messages, subscribes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # Connects go to the running site: its token listener and its real policy service.
    site = ctx.info.site(ctx.site_id)
    if ctx.bench.issuer is None or site.policy_mqtt is None:
        raise BenchError("the site runs no token listener or issuer: no connect figures")
    ctx.progress("policy plugin: token client connects with JWT validation")
    return figures + await measure_connects(
        ctx.pki,
        ctx.bench.issuer,
        (site.policy_mqtt.host, site.policy_mqtt.port),
        (site.mqtt.host, site.mqtt.port),
        quick=ctx.config.quick,
    )
