"""Access grants: which badge UIDs open which doors (``["*"]`` = every door)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select

from backend.api.deps import ApiScope, BackendDep, api_access
from backend.contract import BADGE_UID_PATTERN, DEVICE_ID_PATTERN
from backend.errors import NotFound
from backend.ingest.decisions import ANY_DOOR, normalise_uid
from backend.store import AccessGrant, iso, utcnow

router = APIRouter(
    prefix="/api/v1/cps/access", tags=["access"], dependencies=[api_access(ApiScope.ADMIN)]
)


class GrantBody(BaseModel):
    """``{"uid": "0455AF21", "device_ids": ["stm32f401-door-03"]}``."""

    model_config = ConfigDict(extra="forbid")

    uid: Annotated[str, Field(pattern=BADGE_UID_PATTERN)]
    device_ids: Annotated[list[str], Field(min_length=1, max_length=1000)]

    @field_validator("device_ids")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        for device_id in value:
            if device_id != ANY_DOOR and not DEVICE_ID_PATTERN.fullmatch(device_id):
                raise ValueError(
                    f"{device_id!r} is neither a device id (^[A-Za-z0-9_-]{{1,64}}$) nor '*'"
                )
        return value


def grant_json(grant: AccessGrant) -> dict[str, Any]:
    """API shape of a grant."""
    return {
        "id": grant.id,
        "uid": grant.uid,
        "device_ids": list(grant.device_ids),
        "created_at": iso(grant.created_at),
    }


@router.get("/grants")
async def list_grants(backend: BackendDep) -> dict[str, Any]:
    """Every grant, oldest first."""
    async with backend.store.sessionmaker() as session:
        grants = (await session.scalars(select(AccessGrant).order_by(AccessGrant.created_at))).all()
    items = [grant_json(grant) for grant in grants]
    return {"items": items, "count": len(items)}


@router.post("/grants", status_code=201)
async def create_grant(body: GrantBody, backend: BackendDep) -> dict[str, Any]:
    """Let ``uid`` open ``device_ids``; returns the grant with its ``id``."""
    grant = AccessGrant(
        id=str(uuid.uuid4()),
        uid=normalise_uid(body.uid),
        device_ids=list(dict.fromkeys(body.device_ids)),
        created_at=utcnow(),
    )
    async with backend.store.sessionmaker.begin() as session:
        session.add(grant)
    return grant_json(grant)


@router.delete("/grants/{grant_id}", status_code=204)
async def delete_grant(grant_id: str, backend: BackendDep) -> Response:
    """Revoke a grant."""
    async with backend.store.sessionmaker.begin() as session:
        grant = await session.get(AccessGrant, grant_id)
        if grant is None:
            raise NotFound(
                f"no access grant with id {grant_id!r}; list them with GET "
                "/api/v1/cps/access/grants",
                {"id": grant_id},
            )
        await session.delete(grant)
    return Response(status_code=204)
