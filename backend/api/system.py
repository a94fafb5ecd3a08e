"""``/healthz`` and ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from backend.api.deps import BackendDep, api_access
from backend.metrics import CONTENT_TYPE_LATEST

router = APIRouter()


@router.get("/healthz")
async def healthz(backend: BackendDep) -> JSONResponse:
    """200 when the database, Redis and MQTT are connected; 503 naming what is not."""
    checks = await backend.health()
    down = [name for name, state in checks.items() if state not in ("ok", "disabled")]
    if down:
        return JSONResponse(
            {
                "status": "unavailable",
                "error": f"not connected: {', '.join(down)}",
                "detail": checks,
                "site_id": backend.settings.site_id,
            },
            status_code=503,
        )
    return JSONResponse({"status": "ok", "checks": checks, "site_id": backend.settings.site_id})


@router.get("/metrics", dependencies=[api_access()])
async def metrics(backend: BackendDep) -> Response:
    """Prometheus text exposition of this site's metrics."""
    return Response(backend.metrics.render(), media_type=CONTENT_TYPE_LATEST)
