"""The Sentinel panel's poller against monitors that misbehave: a node that accepts but
never answers, one that answers garbage, one that refuses; and Redis unreachable. Each is
shown as down with its reason (the silent one ended by the timeout), and the poll itself
never fails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis

from backend.console.sentinel import POLL_TIMEOUT_S, SentinelWatch
from bench.services.process import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A server that accepts connections and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.fixture
async def garbage_port() -> AsyncIterator[int]:
    """A server that answers every request with 200 and a body that is not JSON."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_misbehaving_nodes_are_down_with_their_reason_in_bounded_time(
    silent_port: int, garbage_port: int
) -> None:
    monitors = {
        "us-east": f"http://127.0.0.1:{silent_port}",
        "eu-west": f"http://127.0.0.1:{garbage_port}",
        "ap-south": f"http://127.0.0.1:{free_port()}",  # nothing listens
    }
    redis = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    watch = SentinelWatch(monitors, redis)
    try:
        async with httpx.AsyncClient(timeout=POLL_TIMEOUT_S) as http:
            summary = await watch.poll(http)
    finally:
        await redis.aclose()
    regions = {region["region"]: region for region in summary["regions"]}
    assert [region["status"] for region in summary["regions"]] == ["down", "down", "down"]
    # The silent node ended by the timeout (not hanging the poll): that is its reason.
    assert regions["us-east"]["reason"] == f"no answer within {POLL_TIMEOUT_S:g} s"
    assert regions["eu-west"]["reason"] != ""
    assert regions["ap-south"]["reason"] != ""
    assert summary["counters"] is None
    assert summary["counters_note"].startswith("Redis: ")
