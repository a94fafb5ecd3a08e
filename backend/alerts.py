"""The one alert create path of a site: database row, ``aurora:cps:alerts`` entry, observers.

:meth:`AlertService.raise_alert` is used by the ingest handlers (``source="cps"``) and the
REST API (``source="api"``). Observers (the federation publisher) are notified in tasks the
service owns, never awaited by the caller: the local write must not wait on the mesh.
:meth:`AlertService.ingest_remote` persists a peer's alert idempotently by ``dedup_key``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.bus import ALERTS_STREAM, StreamBus, StreamEntry
from backend.contract import Severity
from backend.metrics import BackendMetrics
from backend.store import Alert, iso, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """An alert as stored; :meth:`as_json` is the API and stream shape."""

    id: str
    type: str
    severity: Severity
    title: str
    description: str
    device_id: str | None
    source: str
    origin_site: str | None
    origin_alert_id: str | None
    iocs: list[dict[str, Any]]
    details: dict[str, Any]
    created_at: datetime
    dedup_key: str | None = None

    @classmethod
    def new(  # noqa: PLR0917 - the alert content, in raise_alert's order
        cls,
        type: str,
        severity: Severity | str,
        title: str,
        description: str,
        device_id: str | None,
        iocs: Iterable[Any],
        details: Mapping[str, Any] | None,
        source: str,
        origin_site: str | None,
        *,
        origin_alert_id: str | None = None,
        created_at: datetime | None = None,
        dedup_key: str | None = None,
    ) -> AlertRecord:
        """A record under a fresh id, its severity, IOCs and details normalised.

        The one place raised and remote alerts are shaped, so both store the same way.
        """
        return cls(
            id=str(uuid.uuid4()),
            type=type,
            severity=Severity(severity),
            title=title,
            description=description,
            device_id=device_id,
            source=source,
            origin_site=origin_site,
            origin_alert_id=origin_alert_id,
            iocs=normalise_iocs(iocs),
            details=dict(details or {}),
            created_at=created_at or utcnow(),
            dedup_key=dedup_key,
        )

    @classmethod
    def from_row(cls, row: Alert) -> AlertRecord:
        """Build from an ORM row."""
        return cls(
            id=row.id,
            type=row.type,
            severity=Severity(row.severity),
            title=row.title,
            description=row.description,
            device_id=row.device_id,
            source=row.source,
            origin_site=row.origin_site,
            origin_alert_id=row.origin_alert_id,
            iocs=list(row.iocs or []),
            details=dict(row.details or {}),
            created_at=row.created_at,
            dedup_key=row.dedup_key,
        )

    def as_json(self) -> dict[str, Any]:
        """The alert as the API returns it and the alert stream carries it."""
        return {
            "id": self.id,
            "type": self.type,
            "severity": self.severity.value,
            "title": self.title,
            "description": self.description,
            "device_id": self.device_id,
            "source": self.source,
            "origin_site": self.origin_site,
            "origin_alert_id": self.origin_alert_id,
            "iocs": self.iocs,
            "details": self.details,
            "created_at": iso(self.created_at),
        }


AlertObserver = Callable[[AlertRecord], Awaitable[None]]


def normalise_iocs(iocs: Iterable[Any]) -> list[dict[str, Any]]:
    """IOCs as a list of dicts: a bare string becomes ``{"value": s}``."""
    out: list[dict[str, Any]] = []
    for ioc in iocs:
        if isinstance(ioc, Mapping):
            out.append(dict(ioc))
        else:
            out.append({"value": str(ioc)})
    return out


class AlertService:
    """Creates alerts for one site and tells observers about them."""

    def __init__(
        self,
        site_id: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        bus: StreamBus,
        metrics: BackendMetrics,
    ) -> None:
        self.site_id = site_id
        self._sessionmaker = sessionmaker
        self._bus = bus
        self._metrics = metrics
        self._observers: list[AlertObserver] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def add_observer(self, callback: AlertObserver) -> None:
        """Call ``callback(record)`` after every locally raised alert (in a task)."""
        self._observers.append(callback)

    async def raise_alert(  # noqa: PLR0917 - the documented positional interface
        self,
        type: str,
        severity: Severity | str,
        title: str,
        description: str = "",
        device_id: str | None = None,
        iocs: Sequence[Any] = (),
        source: str = "cps",
        details: Mapping[str, Any] | None = None,
        stream_extra: Mapping[str, str] | None = None,
        trace: str | None = None,
    ) -> AlertRecord:
        """Store an alert, append it to ``aurora:cps:alerts``, notify observers."""
        record = AlertRecord.new(
            type, severity, title, description, device_id, iocs, details, source, self.site_id
        )
        async with self._sessionmaker.begin() as session:
            session.add(self._row(record))
        await self._bus.add(
            StreamEntry(
                ALERTS_STREAM, record.type, record.as_json(), trace, dict(stream_extra or {})
            )
        )
        self._metrics.alerts_raised.labels(record.severity.value).inc()
        self._notify(record)
        return record

    async def ingest_remote(
        self,
        *,
        type: str,
        severity: Severity | str,
        title: str,
        origin_site: str,
        origin_alert_id: str,
        dedup_key: str,
        description: str = "",
        device_id: str | None = None,
        iocs: Sequence[Any] = (),
        details: Mapping[str, Any] | None = None,
        created_at: datetime | None = None,
        source: str | None = None,
    ) -> AlertRecord | None:
        """Persist a peer's alert once; returns None when ``dedup_key`` was seen before.

        The row carries ``source=federation:<origin_site>`` and is appended to the local
        alert stream; observers are not told (a peer's alert is not re-federated).
        """
        record = AlertRecord.new(
            type,
            severity,
            title,
            description,
            device_id,
            iocs,
            details,
            source or f"federation:{origin_site}",
            origin_site,
            origin_alert_id=origin_alert_id,
            created_at=created_at,
            dedup_key=dedup_key,
        )
        try:
            async with self._sessionmaker.begin() as session:
                duplicate = await session.scalar(
                    select(Alert.id).where(Alert.dedup_key == dedup_key)
                )
                if duplicate is not None:
                    return None
                session.add(self._row(record))
        except IntegrityError:
            # A concurrent insert of the same key won the race: still a duplicate.
            return None
        await self._bus.add(StreamEntry(ALERTS_STREAM, record.type, record.as_json()))
        return record

    @staticmethod
    def _row(record: AlertRecord) -> Alert:
        return Alert(
            id=record.id,
            type=record.type,
            severity=record.severity,
            title=record.title,
            description=record.description,
            device_id=record.device_id,
            source=record.source,
            origin_site=record.origin_site,
            origin_alert_id=record.origin_alert_id,
            dedup_key=record.dedup_key,
            iocs=record.iocs,
            details=record.details,
            created_at=record.created_at,
        )

    def _notify(self, record: AlertRecord) -> None:
        for observer in self._observers:
            task = asyncio.create_task(self._call(observer, record), name="alert-observer")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _call(observer: AlertObserver, record: AlertRecord) -> None:
        try:
            await observer(record)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("alert observer %r failed for alert %s", observer, record.id)

    async def aclose(self) -> None:
        """Cancel and await observer calls still running; safe to call twice."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
