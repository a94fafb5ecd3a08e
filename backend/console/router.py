"""Routes of the console: the page, its assets, and the event stream it follows."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, StreamingResponse
from redis.exceptions import RedisError

from backend.api.deps import BackendDep, api_access
from backend.console.feed import FOLLOWED_STREAMS, console_event, sse
from backend.console.sentinel import SentinelWatch
from backend.errors import NotFound

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
#: How long one XREAD waits for news; also how often a disconnected page is noticed.
BLOCK_MS = 1000
#: How often the topology is pushed (seed 002's link states change on a scale of seconds).
TOPOLOGY_EVERY_S = 1.0
#: Sent when nothing else was, so proxies and the page know the stream is alive.
KEEPALIVE = b": keepalive\n\n"

TopologySource = Callable[[], Awaitable[dict[str, Any]]]


def console_router() -> APIRouter:
    """``GET /`` (the page), ``GET /console/{asset}``, ``GET /api/v1/console/events``."""
    router = APIRouter(tags=["console"])

    @router.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @router.get("/console/{asset}", include_in_schema=False)
    async def asset(asset: str) -> FileResponse:
        # Only the files shipped in static/, by exact name: no path ever reaches the disk.
        known = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file()}
        if asset not in known:
            raise NotFound(f"no console asset {asset!r}")
        return FileResponse(known[asset])

    @router.get(
        "/api/v1/console/events",
        operation_id="console_events",
        dependencies=[api_access()],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def events(request: Request, backend: BackendDep) -> StreamingResponse:
        """Server-sent events the console follows: alerts, device events, the topology,
        Sentinel security events and its panel (see ``backend.console.feed``)."""
        topology: TopologySource | None = getattr(backend, "topology_source", None)
        return StreamingResponse(
            _follow(request, backend, topology),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router


async def _follow(
    request: Request, backend: Any, topology: TopologySource | None
) -> AsyncIterator[bytes]:
    bus = backend.bus
    watch: SentinelWatch | None = getattr(backend, "sentinel_watch", None)
    yield sse(
        "hello",
        {
            "site_id": backend.settings.site_id,
            "topology": topology is not None,
            "sentinel": watch is not None,
        },
    )
    after: dict[str, str] | None = None
    next_topology_at = 0.0
    redis_down = False
    shown_sentinel: dict[str, Any] | None = None
    while not await request.is_disconnected():
        sent = False
        if watch is not None:
            # The watch polls on its own; a page is only told when something changed.
            current = watch.latest()
            if current is not None and current != shown_sentinel:
                shown_sentinel = current
                yield sse("sentinel", current)
                sent = True
        if topology is not None and time.monotonic() >= next_topology_at:
            next_topology_at = time.monotonic() + TOPOLOGY_EVERY_S
            try:
                yield sse("topology", await topology())
                sent = True
            except Exception as error:  # the page keeps its last map and says why
                log.warning("console: topology unavailable: %r", error)
                yield sse("status", {"topology": f"unavailable: {error}"})
        try:
            if after is None:
                after = await bus.tail_ids(FOLLOWED_STREAMS)
            entries = await bus.read_after(after, block_ms=BLOCK_MS)
        except (RedisError, OSError) as error:
            if not redis_down:
                yield sse("status", {"redis": f"unreachable: {error}"})
            redis_down = True
            await asyncio.sleep(BLOCK_MS / 1000)
            continue
        if redis_down:
            redis_down = False
            yield sse("status", {"redis": "ok"})
        for entry in entries:
            after[entry.stream] = entry.id
            event = console_event(entry)
            if event is not None:
                yield sse(*event)
                sent = True
        if not sent:
            yield KEEPALIVE
