"""``GET /api/v1/audit``: the newest entries of ``aurora:audit``, filtered."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from backend.api.deps import ApiScope, BackendDep, api_access
from backend.bus import AUDIT_STREAM

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], dependencies=[api_access(ApiScope.READ)])


@router.get("")
async def read_audit(
    backend: BackendDep,
    *,
    type: str | None = None,
    device_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    scan: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> dict[str, Any]:
    """Newest first; ``scan`` bounds how many recent entries are searched for matches."""
    entries = await backend.bus.latest(AUDIT_STREAM, count=scan)
    items: list[dict[str, Any]] = []
    for entry in entries:
        if type is not None and entry.type != type:
            continue
        if device_id is not None and (
            not isinstance(entry.data, dict) or entry.data.get("device_id") != device_id
        ):
            continue
        items.append(entry.as_json())
        if len(items) >= limit:
            break
    return {"items": items, "count": len(items)}
