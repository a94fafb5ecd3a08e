"""``create_app(settings)``: one site's backend as a FastAPI app.

The components live in :class:`~backend.components.Backend` (re-exported here); this
module adds the HTTP side around them: the REST API, the policy routes, the console (and
its Sentinel panel) and federation. The lifespan starts the components unless they were
started already — ``python -m backend`` starts the ingest before it imports this module
(issue 17) — then the HTTP side's own parts, and stops everything in reverse order.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from backend.components import Backend, FederationLike
from backend.console.sentinel import SentinelWatch
from backend.policy.service import site_policy
from backend.settings import Settings

__all__ = ["Backend", "FederationLike", "create_app"]


def create_app(settings: Settings, backend: Backend | None = None) -> FastAPI:
    """The FastAPI app of one site around ``backend`` (a new one when None).

    The lifespan starts ``backend`` when it was not started yet; either way, the app
    owns it from then on and closes it on the way out. Raises StartupError on a bad
    policy rules file or token settings.
    """
    if backend is None:
        backend = Backend(settings)
    backend.policy = site_policy(settings)
    backend.tokens = backend.policy.verifier
    site = backend

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            await site.start()
            if site.sentinel_watch is not None:
                site.spawn(site.sentinel_watch.run(), "sentinel-watch")
            if site.federation is not None:
                await site.federation.start()
            yield
        finally:
            await site.aclose()

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

    if settings.sentinel_monitors:
        backend.sentinel_watch = SentinelWatch(settings.sentinel_monitors, backend.bus.redis)
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
