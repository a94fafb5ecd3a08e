"""Queries the ingest and the API share: device registration, last_seen, grants."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.store.models import AccessGrant, Device, TrustStatus


def _insert_ignore(session: AsyncSession, values: list[dict[str, Any]]) -> Any:
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return insert(Device).values(values).on_conflict_do_nothing(index_elements=["device_id"])


async def ensure_devices(session: AsyncSession, device_ids: Iterable[str], now: datetime) -> None:
    """Register every id not yet in ``cps_devices`` (concurrent inserts are harmless)."""
    values = [
        {
            "device_id": device_id,
            "trust_status": TrustStatus.UNKNOWN,
            "risk_score": 0.0,
            "first_seen": now,
            "last_seen": now,
        }
        for device_id in sorted(set(device_ids))
    ]
    if values:
        await session.execute(_insert_ignore(session, values))


async def touch_devices(session: AsyncSession, seen: dict[str, datetime]) -> None:
    """Set ``last_seen`` for many devices in one executemany UPDATE."""
    if not seen:
        return
    statement = (
        update(Device)
        .where(Device.device_id == bindparam("b_id"))
        .values(last_seen=bindparam("b_seen"))
        .execution_options(synchronize_session=False)
    )
    connection = await session.connection()
    await connection.execute(
        statement, [{"b_id": device_id, "b_seen": moment} for device_id, moment in seen.items()]
    )


async def grants_for_uid(session: AsyncSession, uid: str) -> list[tuple[str, list[str]]]:
    """``(uid, device_ids)`` of every grant for ``uid`` (case-insensitive)."""
    rows = await session.execute(
        select(AccessGrant.uid, AccessGrant.device_ids).where(AccessGrant.uid == uid.upper())
    )
    return [(row.uid, list(row.device_ids)) for row in rows]
