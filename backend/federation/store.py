"""The federation's database writes and reads: site and link rows, shared IOCs, peer audit.

Every SQL statement of the federation lives here. Callers get plain values or rows back;
the link rules come from :mod:`.gossip` (pure), so this module only applies them inside one
transaction. ``SQLAlchemyError`` passes through: each caller decides whether to retry.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.contract import Severity
from backend.federation.gossip import (
    LinkChanged,
    LinkSnapshot,
    LinkThresholds,
    link_latency_ms,
    stale_link_changes,
)
from backend.federation.links import LinkStatus, SiteStatus, propagation_latency_ms, site_status_for
from backend.federation.messages import FederatedAudit, HealthPayload, IocShare, dedup_key
from backend.federation.tables import RemoteAuditRow, SharedIocRow, SiteLinkRow, SiteRow
from backend.store import Alert, as_utc, utcnow

#: Most shared IOCs one listing returns.
IOC_LIST_MAX = 5000


class FederationStore:
    """The federation tables of one site's database."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], local_site: str) -> None:
        self._sessionmaker = sessionmaker
        self.local_site = local_site

    # ------------------------------------------------------------------ sites and links

    async def refresh_local_site(
        self, payload: HealthPayload, domain: str | None, now: datetime
    ) -> None:
        """Upsert this site's own row: always online, with its latest health."""
        async with self._sessionmaker.begin() as session:
            row = await session.get(SiteRow, self.local_site)
            if row is None:
                row = SiteRow(site_id=self.local_site, is_local=True)
                session.add(row)
            row.name = payload.site_name
            row.is_local = True
            row.status = SiteStatus.ONLINE.value
            row.jetstream_domain = domain
            row.last_heartbeat = now
            row.health = payload.model_dump(mode="json")
            row.updated_at = now

    async def record_heartbeat(
        self,
        link_id: str,
        payload: HealthPayload,
        status: LinkStatus,
        received: datetime,
        echo_rtt_ms: float | None = None,
    ) -> str | None:
        """Upsert the peer's site row and the link row; returns the link's previous status
        (None when the link is new). The link latency is half ``echo_rtt_ms`` when an echo
        was timed, else the heartbeat's age (:func:`~.gossip.link_latency_ms`)."""
        async with self._sessionmaker.begin() as session:
            site = await session.get(SiteRow, payload.site_id)
            if site is None:
                site = SiteRow(site_id=payload.site_id, is_local=False)
                session.add(site)
            site.name = payload.site_name or payload.site_id
            site.status = site_status_for(status).value
            site.jetstream_domain = payload.jetstream_domain
            site.last_heartbeat = received
            site.health = payload.model_dump(mode="json")
            site.updated_at = received
            link = await session.get(SiteLinkRow, link_id)
            previous = None if link is None else link.status
            if link is None:
                first, second = sorted((self.local_site, payload.site_id))
                link = SiteLinkRow(link_id=link_id, site_a=first, site_b=second)
                link.status_since = received
                session.add(link)
            elif link.status != status.value:
                link.status_since = received
            link.status = status.value
            link.latency_ms = link_latency_ms(
                round(propagation_latency_ms(payload.sent_at, received), 3), echo_rtt_ms
            )
            link.last_heartbeat = received
            link.updated_at = received
        return previous

    async def record_echo(self, link_id: str, rtt_ms: float) -> None:
        """Set the link's latency from an echo round trip (a link not recorded yet: no-op)."""
        async with self._sessionmaker.begin() as session:
            link = await session.get(SiteLinkRow, link_id)
            if link is not None:
                link.latency_ms = link_latency_ms(0.0, rtt_ms)

    async def demote_silent_links(
        self, now: datetime, thresholds: LinkThresholds
    ) -> list[LinkChanged]:
        """Apply :func:`~.gossip.stale_link_changes` to the link rows and their peers."""
        async with self._sessionmaker.begin() as session:
            rows = {row.link_id: row for row in (await session.scalars(select(SiteLinkRow))).all()}
            snapshots = [
                LinkSnapshot(
                    link_id=row.link_id,
                    site_a=row.site_a,
                    site_b=row.site_b,
                    status=row.status,
                    last_heartbeat=as_utc(row.last_heartbeat) if row.last_heartbeat else None,
                )
                for row in rows.values()
            ]
            changes = stale_link_changes(self.local_site, snapshots, now, thresholds)
            for change in changes:
                link = rows[change.link_id]
                link.status = change.status.value
                link.status_since = now
                link.updated_at = now
                peer = await session.get(SiteRow, change.peer_id)
                if peer is not None:
                    peer.status = site_status_for(change.status).value
                    peer.updated_at = now
        return changes

    async def known_peers(self) -> list[tuple[str, str]]:
        """``(site_id, jetstream_domain)`` of every peer heard before (survives restarts)."""
        async with self._sessionmaker() as session:
            rows = (await session.scalars(select(SiteRow).where(SiteRow.is_local.is_(False)))).all()
        return [
            (row.site_id, row.jetstream_domain)
            for row in rows
            if row.jetstream_domain and row.site_id != self.local_site
        ]

    async def sites(self) -> Sequence[SiteRow]:
        """Every site row, by id."""
        async with self._sessionmaker() as session:
            return (await session.scalars(select(SiteRow).order_by(SiteRow.site_id))).all()

    async def links(self) -> Sequence[SiteLinkRow]:
        """Every link row, by id."""
        async with self._sessionmaker() as session:
            return (await session.scalars(select(SiteLinkRow).order_by(SiteLinkRow.link_id))).all()

    # ------------------------------------------------------------------ alerts to re-offer

    async def recent_local_alerts(
        self, since: datetime, minimum: Severity, limit: int
    ) -> Sequence[Alert]:
        """Local alerts at or above ``minimum`` raised since ``since``, oldest first."""
        wanted = [s for s in Severity if s.rank >= minimum.rank]
        async with self._sessionmaker() as session:
            return (
                await session.scalars(
                    select(Alert)
                    .where(
                        Alert.created_at >= since,
                        Alert.severity.in_(wanted),
                        Alert.dedup_key.is_(None),
                        (Alert.origin_site == self.local_site) | Alert.origin_site.is_(None),
                    )
                    .order_by(Alert.created_at)
                    .limit(limit)
                )
            ).all()

    # ------------------------------------------------------------------ from the peers

    async def store_iocs(self, share: IocShare) -> int:
        """Upsert the shared indicators (first/last seen); returns how many were in it."""
        now = utcnow()
        async with self._sessionmaker.begin() as session:
            for ioc in share.iocs:
                key = dedup_key(share.origin_site, f"{ioc['type']}:{ioc['value']}")
                row = await session.get(SharedIocRow, key)
                if row is None:
                    session.add(
                        SharedIocRow(
                            dedup_key=key,
                            origin_site=share.origin_site,
                            type=ioc["type"],
                            value=ioc["value"],
                            context=share.context,
                            first_seen=now,
                            last_seen=now,
                        )
                    )
                else:
                    row.last_seen = now
        return len(share.iocs)

    async def store_audit(self, event: FederatedAudit) -> bool:
        """Keep a peer's audit event once; False when it was stored before."""
        key = dedup_key(event.origin_site, event.event_id)
        async with self._sessionmaker.begin() as session:
            if await session.get(RemoteAuditRow, key) is not None:
                return False
            session.add(
                RemoteAuditRow(
                    dedup_key=key,
                    origin_site=event.origin_site,
                    event_id=event.event_id,
                    type=event.type,
                    data=event.data,
                    at=event.at,
                    received_at=utcnow(),
                )
            )
        return True

    async def shared_iocs(self, limit: int) -> Sequence[SharedIocRow]:
        """Indicators peers shared, newest first, at most ``limit`` (1..IOC_LIST_MAX)."""
        async with self._sessionmaker() as session:
            return (
                await session.scalars(
                    select(SharedIocRow)
                    .order_by(SharedIocRow.last_seen.desc())
                    .limit(max(1, min(limit, IOC_LIST_MAX)))
                )
            ).all()
