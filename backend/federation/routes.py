"""The federation's REST endpoints and their response models.

``GET /api/v1/sites``, ``GET /api/v1/system/topology`` and ``GET /api/v1/federation/iocs``
(seed 002). The JSON shapes are the ones users' scripts read (DESIGN.md); the models make
them part of the OpenAPI document, each operation with a stable, unique id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Self

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from backend.federation.store import FederationStore
from backend.federation.tables import SiteRow
from backend.store import iso


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _RowOut(_Out):
    """A response read off an ORM row whose attributes carry the same names; times become
    RFC 3339 text (``iso``), as everywhere in the API."""

    @classmethod
    def of(cls, row: object) -> Self:
        """From its row."""
        return cls(**{name: _shown(getattr(row, name)) for name in cls.model_fields})


def _shown(value: object) -> object:
    return iso(value) if isinstance(value, datetime) else value


class SiteOut(_RowOut):
    """One site as this site sees it."""

    site_id: str
    name: str
    is_local: bool
    status: str
    jetstream_domain: str | None
    last_heartbeat: str | None
    health: dict[str, Any] | None


class LinkOut(_RowOut):
    """One undirected link between two sites."""

    link_id: str
    site_a: str
    site_b: str
    status: str
    latency_ms: float | None
    last_heartbeat: str | None
    status_since: str | None


class PeerHealth(_Out):
    """The consumer of one peer's stream."""

    domain: str
    stream: str
    consuming: bool
    last_error: str | None


class FederationHealth(_Out):
    """The federation service's own state (never shows NATS credentials)."""

    enabled: bool
    nats_url: str | None
    nats_connected: bool
    jetstream_ready: bool
    jetstream_domain: str | None
    queue_depth: int
    last_error: str | None
    peers: dict[str, PeerHealth]
    counters: dict[str, int]


class SiteList(_Out):
    """``GET /api/v1/sites``."""

    local_site: str
    items: list[SiteOut]


class Topology(_Out):
    """``GET /api/v1/system/topology``: sites as nodes, links as edges, mesh health."""

    local_site: str
    nodes: list[SiteOut]
    links: list[LinkOut]
    federation: FederationHealth


class SharedIocOut(_RowOut):
    """An indicator a peer shared."""

    type: str
    value: str
    origin_site: str
    context: str
    first_seen: str | None
    last_seen: str | None


class SharedIocList(_Out):
    """``GET /api/v1/federation/iocs``."""

    items: list[SharedIocOut]


def _sites(rows: Sequence[SiteRow]) -> list[SiteOut]:
    return [SiteOut.of(row) for row in rows]


class FederationQueries:
    """The read side behind the endpoints (also called directly by tests and the bench)."""

    def __init__(
        self, site_id: str, store: FederationStore, health: Callable[[], FederationHealth]
    ) -> None:
        self.site_id = site_id
        self._store = store
        self._health = health

    async def list_sites(self) -> SiteList:
        """This site and every peer heard, with their status."""
        return SiteList(local_site=self.site_id, items=_sites(await self._store.sites()))

    async def topology(self) -> Topology:
        """Sites as nodes, links as edges, and the federation's health."""
        sites = await self._store.sites()
        links = await self._store.links()
        return Topology(
            local_site=self.site_id,
            nodes=_sites(sites),
            links=[LinkOut.of(row) for row in links],
            federation=self._health(),
        )

    async def shared_iocs(self, limit: int = 500) -> SharedIocList:
        """Indicators peers shared, newest first (``limit`` clamped to 1..5000)."""
        rows = await self._store.shared_iocs(limit)
        return SharedIocList(items=[SharedIocOut.of(row) for row in rows])


def build_router(queries: FederationQueries) -> APIRouter:
    """The federation endpoints, bound to one site's queries."""
    router = APIRouter(tags=["federation"])

    @router.get("/api/v1/sites", response_model=SiteList, operation_id="federation_list_sites")
    async def list_sites() -> SiteList:
        """This site and every peer heard, with their status."""
        return await queries.list_sites()

    @router.get(
        "/api/v1/system/topology",
        response_model=Topology,
        operation_id="federation_topology",
    )
    async def topology() -> Topology:
        """Sites as nodes, links as edges, mesh health."""
        return await queries.topology()

    @router.get(
        "/api/v1/federation/iocs",
        response_model=SharedIocList,
        operation_id="federation_shared_iocs",
    )
    async def shared_iocs(limit: int = 500) -> SharedIocList:
        """Indicators peers shared, newest first."""
        return await queries.shared_iocs(limit)

    return router
