"""A site's broker through the aurora_auth plugin: devices are refused at SUBSCRIBE for
anything but their own downlink topics (issue #11, item 2), and the token listener asks the
site backend's /mqtt/* router."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import cast

from redis.asyncio import Redis

from backend.bus import TELEMETRY_STREAM
from backend.contract import MessageKind, topic_for
from bench.fixtures import device_client
from bench.policy_probe import token_client
from bench.site import RunningBench

REFUSED = {134, 135}  # bad user name or password / not authorized


async def test_device_cannot_steal_the_backends_shared_subscription(
    bench_one: RunningBench,
) -> None:
    """Issue #11.2: a device joining `$share/ingest/...` gets SUBACK failure; nothing lost."""
    site = bench_one.site("a")
    thief = f"esp32s3-thief-{uuid.uuid4().hex[:6]}"
    sender = f"esp32s3-env-{uuid.uuid4().hex[:6]}"
    pair = bench_one.pki.device(thief)
    readings = 300
    with token_client(
        site.mqtt.host,
        site.mqtt.port,
        bench_one.pki.ca_cert,
        username=None,
        password=None,
        client_id=thief,
        client_cert=(pair.cert, pair.key),
    ) as steal:
        assert steal.connack == 0
        assert steal.subscribe("$share/ingest/aurora/sensors/+/telemetry") >= 128
        assert steal.subscribe("aurora/sensors/+/telemetry") >= 128
        assert steal.subscribe("#") >= 128
        assert steal.subscribe(f"aurora/access/{thief}/command") < 128
        assert steal.subscribe(f"aurora/attestation/{thief}/request") < 128
        async with device_client(bench_one, sender) as client:
            for value in range(readings):
                payload = json.dumps(
                    {"device_id": sender, "metric": "temperature_c", "value": value, "unit": "C"}
                )
                await client.publish(topic_for(MessageKind.TELEMETRY, sender), payload, qos=1)
        redis = Redis.from_url(site.redis, decode_responses=True)
        try:
            values = await _values_from(redis, sender, readings)
        finally:
            await redis.aclose()
        assert sorted(values) == list(range(readings))
        assert steal.messages == []
    log = (bench_one.state_dir / "a" / "mosquitto.log").read_text(errors="replace")
    assert f"'{thief}' refused SUBSCRIBE to '$share/ingest/aurora/sensors/+/telemetry'" in log


async def _values_from(redis: Redis, device_id: str, expected: int) -> list[float]:
    values: list[float] = []
    for _ in range(300):
        values = []
        entries = cast(
            "list[tuple[str, dict[str, str]]]",
            await redis.xrevrange(TELEMETRY_STREAM, count=50_000),
        )
        for _entry_id, fields in entries:
            data = json.loads(fields["data"])
            if data.get("device_id") == device_id:
                values.append(data["value"])
        if len(values) >= expected:
            return values
        await asyncio.sleep(0.05)
    return values


def test_site_token_listener_asks_the_site_router(bench_one: RunningBench) -> None:
    """The site's token listener reaches the backend's /mqtt/* router through the plugin."""
    site = bench_one.site("a")
    assert site.policy_mqtt is not None
    endpoint = site.policy_mqtt
    ca = bench_one.pki.ca_cert
    # The router refuses a name no rule knows (until JWTs: the name is the identity).
    with token_client(
        endpoint.host, endpoint.port, ca, username="not a device!", password="t", client_id="x1"
    ) as client:
        assert client.connack in REFUSED
    log = (bench_one.state_dir / "a" / "mosquitto.log").read_text(errors="replace")
    assert "user check denied by http://127.0.0.1:" in log
