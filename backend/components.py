""":class:`Backend`: every component of one site's backend, without the HTTP side.

The ingest runs on these alone (``python -m backend`` starts them before it even imports
the web framework, and an ingest worker process never imports it): this module imports
no FastAPI, uvicorn or console code (issue 17 — the restart of a backend under a backlog
waited ~0.5 s of CPU on imports the ingest does not use). :func:`backend.app.create_app`
adds the REST API, the console and federation around a :class:`Backend`.

No module-level state: two sites can live in one process (the test suite does that).
Background tasks are owned, cancelled and awaited on the way out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from backend.alerts import AlertService
from backend.attestation import AttestationService, load_ca
from backend.bus import StreamBus
from backend.errors import Unavailable
from backend.ingest.consumer import MqttIngest
from backend.ingest.pipeline import IngestPipeline
from backend.ingest.registry import DeviceRegistry
from backend.ingest.workers import IngestWorkers
from backend.metrics import BackendMetrics
from backend.settings import Settings
from backend.store import Store

if TYPE_CHECKING:
    from backend.console.sentinel import SentinelWatch
    from backend.policy.service import PolicyService
    from backend.policy.tokens import TokenVerifier

log = logging.getLogger(__name__)


class FederationLike(Protocol):
    """What the backend needs of ``backend.federation.service.FederationService``."""

    router: Any

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


class Backend:
    """Every component of one site's backend (the HTTP side attaches its own parts)."""

    #: The site's policy service, and its token verifier that also guards the REST API:
    #: the HTTP side's, set by create_app. The ingest uses neither, and the verifier's
    #: HTTP client (httpx, which loads its CLI's rich/pygments/click) was about 0.15 s of
    #: CPU on the ingest's start-up path.
    policy: PolicyService
    tokens: TokenVerifier | None

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
        #: Set by create_app when federation is enabled; started by the app's lifespan.
        self.federation: FederationLike | None = None
        #: What the console shows as the site topology (the federation's, when enabled).
        self.topology_source: Callable[[], Awaitable[dict[str, Any]]] | None = None
        #: The console's Sentinel panel (set by create_app when the Sentinel's node
        #: monitors are configured).
        self.sentinel_watch: SentinelWatch | None = None
        self._started = False
        self._tasks: list[asyncio.Task[None]] = []

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish to a device through the site's MQTT connection."""
        if self.mqtt is None:
            raise Unavailable("MQTT is disabled on this backend (AURORA_MQTT_ENABLED=false)")
        await self.mqtt.publish(topic, payload, qos)

    def spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``coroutine`` as a background task that :meth:`aclose` cancels and awaits."""
        task = asyncio.create_task(coroutine, name=name)
        task.add_done_callback(_log_task_end)
        self._tasks.append(task)

    async def start(self) -> None:
        """Start the store, the registry and the ingest (once; a second call returns).

        The database must be reachable (StartupError otherwise); Redis and MQTT may
        follow — the ingest connects with backoff.
        """
        if self._started:
            return
        self._started = True
        self.attestation.ca = load_ca(self.settings.mqtt_ca)
        await self.store.start()
        await self.registry.load()
        self.spawn(
            self.registry.run_flusher(self.settings.last_seen_flush_interval_s),
            "last-seen-flusher",
        )
        if self.settings.mqtt_enabled:
            self.mqtt = MqttIngest(self.settings, self.metrics)
            self.mqtt.attach(self.pipeline)
            self.spawn(self.mqtt.run(), "mqtt-ingest")
            if self.settings.ingest_workers > 1 and self.settings.ingest_worker_index == 0:
                self.workers = IngestWorkers(self.settings)
                self.spawn(self.workers.run(), "ingest-workers")

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
