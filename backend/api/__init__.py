"""REST API of one site (DESIGN.md "REST API" and "Interfaces that users' scripts rely on").

Every error is JSON ``{"error": "<what happened and what to do>", "detail": ...}``.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.errors import BackendError


def _where(location: tuple[object, ...] | list[object]) -> str:
    parts = [str(part) for part in location if part not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    """Add the routers and the JSON error handlers to ``app``."""
    from backend.api import access, alerts, audit, devices, system

    @app.exception_handler(BackendError)
    async def backend_error(_request: Request, error: BackendError) -> JSONResponse:
        return JSONResponse(
            {"error": error.message, "detail": error.detail},
            status_code=error.status_code,
            headers=error.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": _where(item.get("loc", ())), "problem": item.get("msg", "")}
            for item in error.errors()
        ]
        summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:5])
        return JSONResponse(
            {"error": f"invalid request: {summary}", "detail": problems}, status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": str(error.detail), "detail": None},
            status_code=error.status_code,
            headers=getattr(error, "headers", None),
        )

    app.include_router(system.router)
    app.include_router(devices.router)
    app.include_router(access.router)
    app.include_router(alerts.router)
    app.include_router(audit.router)
