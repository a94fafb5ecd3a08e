"""Two ingest workers on the shared subscription: both take telemetry, every reading lands
exactly once, also when one worker is killed with SIGKILL mid-stream (issue 17)."""

from __future__ import annotations

import asyncio
import os
import signal

import psutil
from redis.asyncio import Redis

from backend.bus import TELEMETRY_STREAM
from bench.eventually import eventually
from bench.fixtures import BenchFactory
from tests.integration.test_ingest import new_id
from tests.integration.test_nothing_lost import (
    READINGS,
    SLOW_S,
    _publish_all,
    _readings,
    assert_each_reading_once,
)

DEVICES = 3


def _worker_pids(backend_pid: int) -> list[int]:
    pids: list[int] = []
    for child in psutil.Process(backend_pid).children():
        try:
            if "backend.ingest.worker" in " ".join(child.cmdline()):
                pids.append(child.pid)
        except psutil.NoSuchProcess:
            # Also ZombieProcess: the killed worker until the backend has reaped it, which
            # is not a live worker (asking its cmdline raised and failed one CI run).
            continue
    return pids


async def test_two_workers_share_telemetry_exactly_once_through_a_kill(
    bench_factory: BenchFactory,
) -> None:
    # Acks wait 0.3 s after each batch, so the kill surely hits processed, unacked batches.
    bench = bench_factory(
        ["a"],
        site_env={"a": {"AURORA_INGEST_WORKERS": "2", "AURORA_INGEST_ACK_DELAY_S": "0.3"}},
    )
    service = bench.backend_service("a")
    assert service is not None and service.pid is not None
    backend_pid = service.pid
    redis = Redis.from_url(bench.site("a").redis, decode_responses=True)
    device_ids = {new_id("esp32s3-workers") for _ in range(DEVICES)}
    expected = {(device_id, float(seq)) for device_id in device_ids for seq in range(READINGS)}
    try:

        async def one_worker() -> list[int] | None:
            pids = _worker_pids(backend_pid)
            return pids if len(pids) == 1 else None

        (worker_pid,) = await eventually(one_worker, "the second ingest worker", SLOW_S)
        # Worker 1 keeps its redelivery markers under its own client id.
        marker_key = "aurora:ingest:processed:aurora-backend-a-w1"

        async def worker_connected() -> bool:
            text = bench.backend_log("a").read_text(errors="replace")
            return "as aurora-backend-a-w1" in text

        await eventually(worker_connected, "worker 1 connected", SLOW_S)
        publishers = [asyncio.create_task(_publish_all(bench, d)) for d in device_ids]

        async def worker_busy() -> bool:
            count = sum((await _readings(redis, TELEMETRY_STREAM, device_ids)).values())
            return count >= 500 and await redis.scard(marker_key) > 0

        await eventually(worker_busy, "both workers ingesting", SLOW_S)
        os.kill(worker_pid, signal.SIGKILL)
        await asyncio.gather(*publishers)

        async def restarted() -> list[int] | None:
            pids = _worker_pids(backend_pid)
            return pids if len(pids) == 1 and pids[0] != worker_pid else None

        await eventually(restarted, "worker 1 started again", SLOW_S)

        async def all_there() -> bool:
            seen = await _readings(redis, TELEMETRY_STREAM, device_ids)
            return set(seen) >= expected

        await eventually(all_there, "every reading after the kill", SLOW_S)
        seen = await _readings(redis, TELEMETRY_STREAM, device_ids)
        await assert_each_reading_once(redis, device_ids, expected, seen)
        log = bench.backend_log("a").read_text(errors="replace")
        assert "ingest worker 1 exited" in log
    finally:
        await redis.aclose()
