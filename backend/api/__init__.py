"""REST API of one site (DESIGN.md "REST API" and "Interfaces that users' scripts rely on").

Every error is JSON ``{"error": "<what happened and what to do>", "detail": ...}``.
"""

from __future__ import annotations

import warnings
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.errors import BackendError

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ErrorBody(BaseModel):
    """Every error the API answers: a sentence a person can act on, and structured detail."""

    error: str
    detail: Any = None


def _where(location: tuple[object, ...] | list[object]) -> str:
    parts = [str(part) for part in location if part not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def _json_content_type(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _body_not_json(request: Request, error: RequestValidationError) -> str | None:
    """The sentence to answer when the body failed because it was not declared as JSON.

    FastAPI parses a body as JSON only under a JSON ``Content-Type`` (curl's ``-d`` sends
    ``application/x-www-form-urlencoded``); the model error it raises then says nothing of
    the header, which is what the caller must change.
    """
    if request.method not in _BODY_METHODS or _json_content_type(request):
        return None
    if not any(tuple(item.get("loc", ()))[:1] == ("body",) for item in error.errors()):
        return None
    got = request.headers.get("content-type")
    sent = f"it was sent as {got!r}" if got else "it was sent without a Content-Type"
    return (
        f"invalid request: the body must be JSON with the header 'Content-Type: application/json'; "
        f"{sent} (with curl: -H 'Content-Type: application/json')"
    )


def install(app: FastAPI) -> None:
    """Add the routers and the JSON error handlers to ``app``."""
    from backend.api import access, alerts, audit, devices, system
    from backend.api.validation import BodyLimit

    @app.exception_handler(BackendError)
    async def backend_error(_request: Request, error: BackendError) -> JSONResponse:
        return JSONResponse(
            {"error": error.message, "detail": error.detail},
            status_code=error.status_code,
            headers=error.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": _where(item.get("loc", ())), "problem": item.get("msg", "")}
            for item in error.errors()
        ]
        summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:5])
        message = _body_not_json(request, error) or f"invalid request: {summary}"
        return JSONResponse({"error": message, "detail": problems}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": str(error.detail), "detail": None},
            status_code=error.status_code,
            headers=getattr(error, "headers", None),
        )

    _document_errors(app)
    # Bodies are parsed whole before validation: bound them first (JSON 413 beyond).
    app.add_middleware(BodyLimit)
    app.include_router(system.router)
    app.include_router(devices.router)
    app.include_router(access.router)
    app.include_router(alerts.router)
    app.include_router(audit.router)


def _document_errors(app: FastAPI) -> None:
    """Make the OpenAPI schema true: the real 422 shape, one operation id per operation.

    FastAPI documents its default validation error shape for every route; ours is
    ``{"error", "detail"}``, and a schema that lies fails every client generated from it
    (and the schemathesis run of the fuzz tier). A route serving several methods (the
    go-auth endpoints take GET and POST) gets one id per method instead of a duplicate.
    """
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Duplicate Operation ID", UserWarning)
                schema = original()
            schemas = schema.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in schemas:
                schemas["HTTPValidationError"] = ErrorBody.model_json_schema()
            seen: set[str] = set()
            for path in schema.get("paths", {}).values():
                for method, operation in path.items():
                    op_id = operation.get("operationId")
                    if op_id in seen:
                        operation["operationId"] = f"{op_id}_{method}"
                    seen.add(operation.get("operationId"))
        return app.openapi_schema or original()

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented hook
