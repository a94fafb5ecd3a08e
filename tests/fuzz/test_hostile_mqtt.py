"""A few thousand seeded hostile MQTT messages on every upstream contract topic, with valid
readings interleaved, through the real broker into the site's backend.

Afterwards the backend is alive, every valid reading is in ``aurora:cps:telemetry``
exactly once, and the rejection counters moved by exactly the hostile messages delivered,
reason by reason (each hostile message's reason is the contract's own, checked in
test_contract_fuzz).
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter

import aiomqtt
import httpx
from redis.asyncio import Redis

from backend.bus import TELEMETRY_STREAM
from backend.contract import MessageKind, topic_for
from bench.fixtures import device_client, probe_client
from bench.site import RunningBench
from tests.fuzz.hostile import Hostile, foreign_topic_messages, hostile_messages
from tests.integration.test_ingest import eventually, new_id

ROUNDS = 30
VALID_PER_ROUND = 20
_REJECTED = re.compile(r'^aurora_ingest_rejected_messages_total\{reason="([a-z_]+)"\} (\S+)$', re.M)


async def rejections(api: httpx.AsyncClient) -> Counter[str]:
    """The site's rejection counters by reason."""
    response = await api.get("/metrics")
    response.raise_for_status()
    return Counter({m[1]: int(float(m[2])) for m in _REJECTED.finditer(response.text)})


def reading(device_id: str, n: int) -> bytes:
    # A metric without thresholds: readings raise no alert, only stream entries.
    body = {"device_id": device_id, "metric": "fuzz_seq", "value": float(n), "unit": "n"}
    return json.dumps(body, separators=(",", ":")).encode()


async def test_hostile_flood_is_rejected_exactly_and_valid_readings_arrive_once(
    bench_one: RunningBench,
) -> None:
    site = bench_one.site("a")
    device_id = new_id("esp32s3-fuzz")
    rng = random.Random(20261201)
    plan: list[Hostile | int] = []
    for round_ in range(ROUNDS):
        batch: list[Hostile | int] = [*hostile_messages(device_id, rng)]
        batch += foreign_topic_messages(rng)
        batch += [round_ * VALID_PER_ROUND + i for i in range(VALID_PER_ROUND)]
        rng.shuffle(batch)
        plan += batch
    hostile = [item for item in plan if isinstance(item, Hostile)]
    expected = Counter(item.reason.value for item in hostile)
    assert len(hostile) >= 2000

    telemetry = topic_for(MessageKind.TELEMETRY, device_id)
    async with site.api_client(timeout=10) as api:
        before = await rejections(api)
        async with (
            device_client(bench_one, device_id) as device,
            probe_client(bench_one) as probe,
        ):
            for item in plan:
                if isinstance(item, int):
                    await device.publish(telemetry, reading(device_id, item), qos=1)
                else:
                    client: aiomqtt.Client = probe if item.foreign_topic else device
                    await client.publish(item.topic, item.payload, qos=1)

        async def counted() -> Counter[str] | None:
            delta = await rejections(api) - before
            return delta if delta == expected else None

        await eventually(counted, f"{len(hostile)} rejections by reason", timeout_s=60)

        redis = Redis.from_url(site.redis, decode_responses=True)
        try:

            async def readings() -> list[float] | None:
                values = [
                    json.loads(fields["data"])["value"]
                    for _, fields in await redis.xrevrange(TELEMETRY_STREAM, count=50_000)
                    if f'"device_id":"{device_id}"' in fields["data"]
                ]
                return values if len(values) >= ROUNDS * VALID_PER_ROUND else None

            values = await eventually(readings, "every valid reading", timeout_s=60)
        finally:
            await redis.aclose()
        assert sorted(values) == [float(n) for n in range(ROUNDS * VALID_PER_ROUND)]
        # Nothing was counted twice or late: the counters still equal the hostile messages.
        assert await rejections(api) - before == expected
        health = await api.get("/healthz")
        assert health.status_code == 200, health.text
