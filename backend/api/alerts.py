"""The SOC alert queue: list (filters, newest first) and create."""

from __future__ import annotations

from typing import Annotated, Any, get_type_hints

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, create_model
from sqlalchemy import select

from backend.alerts import AlertRecord
from backend.api.deps import ApiScope, BackendDep, api_access
from backend.api.validation import FreeJson, FreeJsonList, Text, UtcDatetime
from backend.contract import DEVICE_ID_PATTERN, Severity
from backend.store import Alert

router = APIRouter(
    prefix="/api/v1/alerts", tags=["alerts"], dependencies=[api_access(ApiScope.OPERATE)]
)


class AlertBody(BaseModel):
    """``{"type": "c2_beacon", "severity": "critical", "title": "...", ...}``."""

    model_config = ConfigDict(extra="forbid")

    type: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
    severity: Severity
    title: Annotated[Text, Field(min_length=1, max_length=256)]
    description: Annotated[Text, Field(max_length=4096)] = ""
    device_id: Annotated[str | None, Field(pattern=DEVICE_ID_PATTERN.pattern)] = None
    #: Free-form JSON is bounded (depth, size, finite numbers): see backend.api.validation.
    iocs: Annotated[FreeJsonList, Field(max_length=100)] = []
    details: FreeJson = {}


#: Fields of :class:`AlertRecord` the API does not show (internal to federation dedup).
_NOT_SHOWN = frozenset({"dedup_key"})

#: An alert as the API shows it: ``AlertRecord.as_json()``, i.e. the record's own fields
#: (one source of truth) with ``created_at`` as RFC 3339 text.
AlertOut = create_model(
    "AlertOut",
    __doc__="An alert as the API shows it (``AlertRecord.as_json``).",
    **{  # type: ignore[call-overload]
        name: ((str | None) if name == "created_at" else hint, ...)
        for name, hint in get_type_hints(AlertRecord).items()
        if name not in _NOT_SHOWN
    },
)


class AlertList(BaseModel):
    """``{"items": [...], "count": N}``, newest first."""

    items: list[AlertOut]  # type: ignore[valid-type]
    count: int


@router.get("", response_model=AlertList)
async def list_alerts(
    backend: BackendDep,
    *,
    type: str | None = None,
    severity: Severity | None = None,
    source: str | None = None,
    device_id: str | None = None,
    since: UtcDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Alerts, newest first, filtered by ``type``, ``severity``, ``source``, ``device_id``,
    ``since`` (RFC 3339)."""
    query = select(Alert)
    if type is not None:
        query = query.where(Alert.type == type)
    if severity is not None:
        query = query.where(Alert.severity == severity)
    if source is not None:
        query = query.where(Alert.source == source)
    if device_id is not None:
        query = query.where(Alert.device_id == device_id)
    if since is not None:
        # UtcDatetime converted it (or refused it with a 422): stored times are UTC.
        query = query.where(Alert.created_at >= since)
    query = query.order_by(Alert.created_at.desc(), Alert.id).limit(limit)
    async with backend.store.sessionmaker() as session:
        rows = (await session.scalars(query)).all()
    items = [AlertRecord.from_row(row).as_json() for row in rows]
    return {"items": items, "count": len(items)}


@router.post("", status_code=201, response_model=AlertOut)
async def create_alert(body: AlertBody, backend: BackendDep) -> dict[str, Any]:
    """Raise an alert through the one create path (``source="api"``)."""
    record = await backend.alerts.raise_alert(
        body.type,
        body.severity,
        body.title,
        description=body.description,
        device_id=body.device_id,
        iocs=body.iocs,
        source="api",
        details=body.details,
    )
    return record.as_json()
