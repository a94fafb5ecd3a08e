"""Cache of known devices and batched ``last_seen`` refreshes (the hot path writes no row).

Telemetry at tens of thousands of messages per second cannot afford a database write per
message, so handlers only :meth:`DeviceRegistry.touch` a device; :meth:`flush` (run every
``last_seen_flush_interval_s``) registers unknown ids and writes every pending ``last_seen``
in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.store import Device, utcnow
from backend.store.queries import ensure_devices, touch_devices

log = logging.getLogger(__name__)


class DeviceRegistry:
    """Known device ids plus pending ``last_seen`` refreshes."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker
        self.known: set[str] = set()
        self._seen: dict[str, datetime] = {}
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        """Fill the cache from the database (at startup)."""
        async with self.sessionmaker() as session:
            self.known.update(await session.scalars(select(Device.device_id)))

    def touch(self, device_id: str, now: datetime | None = None) -> None:
        """Remember that ``device_id`` was seen ``now`` (default: the clock), written by the
        next :meth:`flush`."""
        self._seen[device_id] = now if now is not None else utcnow()

    def mark_known(self, device_id: str) -> None:
        """Record that a handler registered ``device_id`` itself."""
        self.known.add(device_id)

    async def ensure(self, session: AsyncSession, device_id: str) -> None:
        """Register ``device_id`` now (inside ``session``) unless known."""
        if device_id not in self.known:
            await ensure_devices(session, [device_id], utcnow())

    async def flush(self) -> int:
        """Register unknown devices and write pending ``last_seen``; returns rows touched."""
        async with self._lock:
            seen, self._seen = self._seen, {}
            if not seen:
                return 0
            unknown = [device_id for device_id in seen if device_id not in self.known]
            try:
                async with self.sessionmaker.begin() as session:
                    if unknown:
                        await ensure_devices(session, unknown, utcnow())
                    await touch_devices(session, seen)
            except BaseException:
                # Keep the refreshes for the next try (newer ones win).
                for device_id, moment in seen.items():
                    self._seen.setdefault(device_id, moment)
                raise
            self.known.update(unknown)
            return len(seen)

    async def run_flusher(self, interval_s: float) -> None:
        """Flush every ``interval_s`` until cancelled (then once more)."""
        try:
            while True:
                await asyncio.sleep(interval_s)
                try:
                    await self.flush()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("last_seen flush failed; will retry")
        finally:
            try:
                await asyncio.shield(self.flush())
            except Exception:
                log.exception("final last_seen flush failed")
