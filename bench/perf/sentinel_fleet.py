"""The Sentinel figures' simulated subscriber fleet: Auth DB rows, many MQTT clients each on
its own topic at QoS 1, quantiles, node ``/varz``.

The fleet's Auth DB rows share one *cheap* argon2 hash so a ramp measures the broker, not
the KDF; the auth figures use the production parameters.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiomqtt
import argon2
import httpx

from backend.sentinel.authdb import AuthDb
from bench.perf.runner import PerfContext
from bench.services.sentinel_client import mqtt_client

PASSWORD = "perf-password"  # noqa: S105 (the fleet's shared bench password)
CHEAP = argon2.PasswordHasher(time_cost=1, memory_cost=256, parallelism=1)


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def add_clients(ctx: PerfContext, ids: list[str], region: str) -> None:
    db = AuthDb.open(ctx.bench.site("a").database)
    try:
        await db.start()
        await db.add_many(ids, CHEAP.hash(PASSWORD), region)
    finally:
        await db.aclose()


async def varz(monitor: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5) as client:
        answer = await client.get(f"{monitor}/varz")
        data: dict[str, Any] = answer.json()
        return data


async def connect_many(
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
            granted = await client.subscribe(f"clients/{client_id}/alerts", qos=1)
            if any(isinstance(code, int) or code.is_failure for code in granted):
                return  # connected but refused (e.g. a consumer limit): not a subscriber
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


async def release(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    """Close every held client (also when the part was cancelled by its cap)."""
    stop.set()
    for task in tasks:
        task.cancel()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(60):  # thousands of disconnects on a loaded loop
            await asyncio.gather(*tasks, return_exceptions=True)
