"""Nothing lost, nothing doubled: kill -9 the backend while devices publish QoS 1 telemetry,
restart it, and every reading is in the streams exactly once (DESIGN.md, Delivery)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import pytest
from redis.asyncio import Redis

from backend.app import Backend
from backend.bus import AUDIT_STREAM, TELEMETRY_STREAM
from backend.contract import MessageKind, topic_for
from backend.ingest.consumer import RawMessage
from backend.settings import Settings
from bench.eventually import eventually
from bench.fixtures import BenchFactory, device_client
from bench.site import RunningBench
from tests.integration.test_ingest import metric_value, new_id, telemetry_payload

DEVICES = 3
#: Deadline for steps that move thousands of messages (the CI machine has two cores).
SLOW_S = 90.0
READINGS = 1500


async def _readings(redis: Redis, stream: str, device_ids: set[str]) -> Counter[tuple[str, float]]:
    seen: Counter[tuple[str, float]] = Counter()
    last = "-"
    while True:
        batch = await redis.xrange(stream, min=last, count=5000)
        if last != "-":
            batch = batch[1:]
        if not batch:
            return seen
        for _, fields in batch:
            if fields.get("type") != "telemetry":
                continue
            data = json.loads(fields["data"])
            if data["device_id"] in device_ids:
                seen[(data["device_id"], data["value"])] += 1
        last = batch[-1][0]


async def assert_each_reading_once(
    redis: Redis,
    device_ids: set[str],
    expected: set[tuple[str, float]],
    seen: Counter[tuple[str, float]],
) -> None:
    """Every reading ``expected`` was ``seen`` in the telemetry stream once and audited once."""
    doubled = {key: n for key, n in seen.items() if n > 1}
    assert not doubled, f"{len(doubled)} readings processed twice, e.g. {list(doubled)[:5]}"
    assert set(seen) == expected
    audit = await _readings(redis, AUDIT_STREAM, device_ids)
    assert set(audit) == expected
    assert max(audit.values()) == 1


async def _publish_all(bench: RunningBench, device_id: str) -> None:
    topic = topic_for(MessageKind.TELEMETRY, device_id)
    async with device_client(bench, device_id, max_inflight_messages=100) as client:
        for sequence in range(READINGS):
            await client.publish(topic, telemetry_payload(device_id, float(sequence)), qos=1)
            if sequence % 50 == 0:
                await asyncio.sleep(0.01)  # keep publishing across the crash window


async def test_kill_minus_nine_loses_and_doubles_nothing(bench_factory: BenchFactory) -> None:
    # Acks wait 1 s after each batch landed, so the kill surely hits batches that were
    # processed but not acknowledged: their redelivery must be recognised, not re-counted.
    # (0.3 s missed the window once on PostgreSQL under load: the kill fell mid-batch.)
    bench = bench_factory(["a"], site_env={"a": {"AURORA_INGEST_ACK_DELAY_S": "1.0"}})
    redis = Redis.from_url(bench.site("a").redis, decode_responses=True)
    device_ids = {new_id("esp32s3-seq") for _ in range(DEVICES)}
    expected = {(device_id, float(seq)) for device_id in device_ids for seq in range(READINGS)}
    try:
        publishers = [asyncio.create_task(_publish_all(bench, d)) for d in device_ids]

        async def some_processed() -> int | None:
            count = sum((await _readings(redis, TELEMETRY_STREAM, device_ids)).values())
            return count if count >= 500 else None

        processed_before_crash = await eventually(some_processed, "ingest under way", SLOW_S)
        await asyncio.to_thread(bench.stop_backend, "a", kill=True)
        await asyncio.gather(*publishers)
        assert processed_before_crash < len(expected), "the crash must interrupt the ingest"
        await asyncio.to_thread(bench.start_backend, "a")

        async def all_there() -> Counter[tuple[str, float]] | None:
            seen = await _readings(redis, TELEMETRY_STREAM, device_ids)
            return seen if set(seen) >= expected else None

        seen = await eventually(all_there, "every reading after the restart", SLOW_S)
        async with bench.site("a").api_client() as api:
            redelivered = await metric_value(api, "aurora_ingest_duplicates_total")
        assert redelivered > 0, "the crash window held processed, unacknowledged messages"
        await assert_each_reading_once(redis, device_ids, expected, seen)
    finally:
        await redis.aclose()


async def test_redelivered_message_is_only_acknowledged(
    bench_one: RunningBench, tmp_path: Path
) -> None:
    """The marker written with a batch makes a DUP redelivery of it a no-op."""
    settings = Settings(
        site_id="dedupe",
        mqtt_enabled=False,
        redis_url=bench_one.site("a").redis,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'dedupe.db'}",
        mqtt_client_id=new_id("dedupe-client"),
    )
    backend = Backend(settings)
    await backend.start()
    device_id = new_id("esp32s3-dup")
    try:
        message = RawMessage(
            topic_for(MessageKind.TELEMETRY, device_id),
            telemetry_payload(device_id, 7.0),
            qos=1,
            mid=42,
            dup=False,
            trace=None,
        )
        await backend.pipeline.process([message])
        redelivery = RawMessage(message.topic, message.payload, 1, 42, True, None)
        await backend.pipeline.process([redelivery])
        seen = await _readings(backend.bus.redis, TELEMETRY_STREAM, {device_id})
        assert seen == Counter({(device_id, 7.0): 1})
        assert backend.metrics.duplicates._value.get() == 1
        # A new message reusing packet id 42 with other content is processed.
        other = RawMessage(message.topic, telemetry_payload(device_id, 8.0), 1, 42, True, None)
        await backend.pipeline.process([other])
        seen = await _readings(backend.bus.redis, TELEMETRY_STREAM, {device_id})
        assert seen == Counter({(device_id, 7.0): 1, (device_id, 8.0): 1})
        # Unacknowledged batches keep their markers; acknowledged ones are cleaned up.
        key = backend.pipeline.marker_key
        assert await backend.bus.redis.scard(key) == 2
        backend.pipeline.acknowledged()
        await backend.pipeline.process([])
        assert await backend.bus.redis.scard(key) == 1, "only the unconfirmed batch is left"
    finally:
        await backend.aclose()


pytestmark = pytest.mark.timeout(240)


async def test_redis_outage_delays_but_loses_nothing(bench_factory: BenchFactory) -> None:
    """While Redis is down nothing is acked: /healthz says so, and the readings published
    meanwhile all arrive once Redis is back (the broker redelivers after a reconnect)."""
    bench = bench_factory(["a"], site_env={"a": {"AURORA_MQTT_RECONNECT_MAX_S": "1"}})
    device_id = new_id("esp32s3-outage")
    async with bench.site("a").api_client(timeout=10) as api:
        await asyncio.to_thread(bench.stop_service, "a", "redis")

        async def redis_reported_down() -> dict[str, str] | None:
            response = await api.get("/healthz")
            if response.status_code != 503:
                return None
            detail: dict[str, str] = response.json()["detail"]
            return detail

        detail = await eventually(redis_reported_down, "/healthz to name Redis")
        assert detail["redis"] == "unreachable"
        assert detail["database"] == "ok"
        async with device_client(bench, device_id) as client:
            for sequence in range(50):
                await client.publish(
                    topic_for(MessageKind.TELEMETRY, device_id),
                    telemetry_payload(device_id, float(sequence)),
                    qos=1,
                )
        await asyncio.to_thread(bench.start_service, "a", "redis")
        redis = Redis.from_url(bench.site("a").redis, decode_responses=True)
        try:

            async def all_readings() -> Counter[tuple[str, float]] | None:
                seen = await _readings(redis, TELEMETRY_STREAM, {device_id})
                return seen if len(seen) == 50 else None

            seen = await eventually(all_readings, "the readings held during the outage", SLOW_S)
            assert max(seen.values()) == 1
        finally:
            await redis.aclose()
        assert (await api.get("/healthz")).status_code == 200
