"""``create_app(settings)``: one site's backend as a FastAPI app.

No module-level state: every component hangs off :class:`Backend`, built per app, so two
sites can live in one process (the test suite does that). The lifespan starts the store,
the Redis bus, the MQTT ingest (and federation when enabled) and stops them in reverse
order; background tasks are owned, cancelled and awaited on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Protocol

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from backend.alerts import AlertService
from backend.attestation import AttestationService, load_ca
from backend.bus import StreamBus
from backend.errors import Unavailable
from backend.ingest.consumer import MqttIngest
from backend.ingest.pipeline import IngestPipeline
from backend.ingest.registry import DeviceRegistry
from backend.ingest.workers import IngestWorkers
from backend.metrics import BackendMetrics
from backend.policy.service import site_policy
from backend.settings import Settings
from backend.store import Store

log = logging.getLogger(__name__)


class FederationLike(Protocol):
    """What the backend needs of ``backend.federation.service.FederationService``."""

    router: Any

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


class Backend:
    """Every component of one site's backend."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = BackendMetrics()
        self.store = Store(settings.database_url)
        self.bus = StreamBus(settings.redis_url, settings.stream_maxlen)
        self.alerts = AlertService(
            settings.site_id, self.store.sessionmaker, self.bus, self.metrics
        )
        self.registry = DeviceRegistry(self.store.sessionmaker)
        self.mqtt: MqttIngest | None = None
        self.workers: IngestWorkers | None = None
        self.attestation = AttestationService(
            self.store.sessionmaker,
            self.alerts,
            None,
            settings.attestation_expires_in_s,
            settings.attestation_failure_risk_bump,
        )
        self.pipeline = IngestPipeline(
            settings,
            self.bus,
            self.registry,
            self.alerts,
            self.attestation,
            self.metrics,
            self.publish,
        )
        self.federation: FederationLike | None = None
        #: The policy service; its token verifier also guards the REST API.
        self.policy = site_policy(settings)
        self.tokens = self.policy.verifier
        #: What the console shows as the site topology (the federation's, when enabled).
        self.topology_source: Callable[[], Awaitable[dict[str, Any]]] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish to a device through the site's MQTT connection."""
        if self.mqtt is None:
            raise Unavailable("MQTT is disabled on this backend (AURORA_MQTT_ENABLED=false)")
        await self.mqtt.publish(topic, payload, qos)

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        task.add_done_callback(_log_task_end)
        self._tasks.append(task)

    async def start(self) -> None:
        """Start every component; the database must be reachable (Redis/MQTT may follow)."""
        self.attestation.ca = load_ca(self.settings.mqtt_ca)
        await self.store.start()
        await self.registry.load()
        self._spawn(
            self.registry.run_flusher(self.settings.last_seen_flush_interval_s),
            "last-seen-flusher",
        )
        if self.settings.mqtt_enabled:
            self.mqtt = MqttIngest(self.settings, self.metrics)
            self.mqtt.attach(self.pipeline)
            self._spawn(self.mqtt.run(), "mqtt-ingest")
            if self.settings.ingest_workers > 1 and self.settings.ingest_worker_index == 0:
                self.workers = IngestWorkers(self.settings)
                self._spawn(self.workers.run(), "ingest-workers")
        if self.federation is not None:
            await self.federation.start()

    async def health(self) -> dict[str, str]:
        """``{"database": ok|error, "redis": ..., "mqtt": ...}``."""
        database, redis = await asyncio.gather(
            _within(self.store.ping(), 2.0), _within(self.bus.ping(), 2.0)
        )
        checks = {
            "database": "ok" if database else "unreachable",
            "redis": "ok" if redis else "unreachable",
        }
        if self.mqtt is None:
            checks["mqtt"] = "disabled"
        else:
            checks["mqtt"] = "ok" if self.mqtt.connected else f"down ({self.mqtt.last_error})"
        return checks

    async def aclose(self) -> None:
        """Stop everything in reverse order; safe to call twice."""
        if self.federation is not None:
            try:
                await self.federation.aclose()
            except Exception:
                log.exception("federation did not close cleanly")
        tasks, self._tasks = self._tasks, []
        for task in reversed(tasks):
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                log.error("background task ended with %r", result)
        await self.alerts.aclose()
        await self.bus.aclose()
        await self.store.aclose()


async def _within(check: Awaitable[bool], timeout_s: float) -> bool:
    try:
        async with asyncio.timeout(timeout_s):
            return await check
    except TimeoutError:
        return False


def _log_task_end(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("background task %s died: %r", task.get_name(), error, exc_info=error)


def create_app(settings: Settings) -> FastAPI:
    """The FastAPI app of one site (components start in the lifespan)."""
    backend = Backend(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            await backend.start()
            yield
        finally:
            await backend.aclose()

    # FastAPIOffline serves /docs and /redoc from assets shipped in its wheel instead of a
    # CDN: the page must work on a lab network with no internet (issue 16).
    app = FastAPIOffline(
        title=f"AuroraSOC CPS backend (site {settings.site_id})",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.backend = backend

    from backend.api import install

    install(app)
    from backend.api.deps import api_access
    from backend.policy.router import install_policy

    install_policy(app, backend.policy, backend.metrics)

    if settings.federation_enabled:
        module = importlib.import_module("backend.federation.service")
        federation = module.FederationService(settings, backend.alerts, backend.store.sessionmaker)
        backend.federation = federation
        # Its routes only read (sites, topology, IOCs): a read token is enough.
        backend.topology_source = federation.topology_json
        app.include_router(federation.router, dependencies=[api_access()])
    from backend.console import console_router

    app.include_router(console_router())
    return app
