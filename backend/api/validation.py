"""Input limits of the REST API: what a request may carry so that it can be read back.

Issue 11 found three ways one request broke the alert queue for everyone: free-form JSON
(``details``, ``iocs``) nested ~260 levels was stored and then every ``GET /api/v1/alerts``
answered 500 (the serializer recursed too deep); ``NaN`` was stored and written into
``aurora:cps:alerts``, which strict JSON readers refuse; and a ``since`` time near the ends
of the calendar overflowed when converted to UTC. The rule here: refuse at the boundary,
with a 422 naming the field, anything that could not be stored, served or streamed as
strict JSON.

* :data:`FreeJson` / :data:`FreeJsonList` — free-form JSON, at most :data:`MAX_JSON_DEPTH`
  levels, :data:`MAX_JSON_BYTES` serialized, finite numbers only.
* :data:`UtcDatetime` — an RFC 3339 query time, converted to UTC or refused.
* :data:`Text` — a string that can be written out as UTF-8 (no lone surrogate escapes).
* :class:`BodyLimit` — bodies over :data:`MAX_BODY_BYTES` get a JSON 413 before parsing.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from pydantic import AfterValidator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Deepest nesting of free-form JSON accepted (details, IOCs). Real alert details are a
#: few levels deep; the limit keeps every reader's recursion far from its bound.
MAX_JSON_DEPTH = 16
#: Serialized size of one free-form JSON field.
MAX_JSON_BYTES = 16 * 1024
#: Whole request body; bigger bodies are refused with 413 before being parsed.
MAX_BODY_BYTES = 256 * 1024


def check_free_json(value: Any, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise ``ValueError`` (a 422 in the API) when ``value`` is too deep or not finite.

    Walks iteratively, so a hostile value cannot make the check itself recurse. ``value``
    itself is level 1 when it is a container.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth + 1 > max_depth:
                raise ValueError(f"nested more than {max_depth} levels deep")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"{item} is not a JSON number; send finite numbers only")
        elif isinstance(item, str):
            _utf8(item)
        if isinstance(item, dict):
            for key in item:
                _utf8(key)


def _utf8(value: str) -> str:
    # JSON may spell a lone UTF-16 surrogate (\ud800); Python keeps it, but no UTF-8
    # writer (the response, the stream) can encode it.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains a lone UTF-16 surrogate; send valid Unicode text") from None
    return value


def _bounded(value: Any) -> Any:
    check_free_json(value)
    size = len(json.dumps(value, allow_nan=False, separators=(",", ":")))
    if size > MAX_JSON_BYTES:
        raise ValueError(f"is {size} bytes as JSON, limit {MAX_JSON_BYTES}")
    return value


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        # Stored times are UTC (SQLite keeps no offset): a naive time means UTC.
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(
            f"{value.isoformat()} is outside the representable range once converted to UTC"
        ) from None


FreeJson = Annotated[dict[str, Any], AfterValidator(_bounded)]
FreeJsonList = Annotated[list[dict[str, Any] | str], AfterValidator(_bounded)]
UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
Text = Annotated[str, AfterValidator(_utf8)]


def _too_large(limit: int) -> str:
    return f"request body exceeds {limit} bytes; send less (alert details are capped at 16 KiB)"


class BodyLimit:
    """ASGI middleware: a REST API body over ``max_bytes`` is refused with a JSON 413.

    A declared ``Content-Length`` is refused before the app runs; a streamed body is cut
    off as it arrives (the error reaches the app's JSON error handler). FastAPI's own
    ``max_body_size`` answers in plain text, which breaks the API's JSON-errors promise.
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES, prefix: str = "/api/"
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        #: Only paths under this prefix: the go-auth endpoints keep their own limit and the
        #: 400 that protocol expects.
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            response = JSONResponse(
                {"error": _too_large(self.max_bytes), "detail": None}, status_code=413
            )
            await response(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, _too_large(self.max_bytes))
            return message

        await self.app(scope, limited, send)
