"""Federation tables on the backend's :class:`~backend.store.models.Base`.

``Store.start`` imports this module before ``create_all``, so the tables exist on both
SQLite and PostgreSQL without a migration step.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, String
from sqlalchemy.orm import Mapped, mapped_column

from backend.store.models import Base


class SiteRow(Base):
    """A site of the mesh: this one (``is_local``) or a peer heard through gossip."""

    __tablename__ = "federation_sites"

    site_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    is_local: Mapped[bool] = mapped_column(Boolean, default=False)
    #: online | degraded | offline (:class:`~backend.federation.links.SiteStatus`).
    status: Mapped[str] = mapped_column(String(16), default="offline")
    #: JetStream domain to source the site's AURORA stream from.
    jetstream_domain: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: Local receipt time of its last heartbeat (our clock: no skew in link ages).
    last_heartbeat: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The last health payload as the site sent it.
    health: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SiteLinkRow(Base):
    """The undirected link ``link-<a>-<b>`` between this site and a peer."""

    __tablename__ = "federation_site_links"

    link_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    site_a: Mapped[str] = mapped_column(String(32))
    site_b: Mapped[str] = mapped_column(String(32))
    #: healthy | degraded | down (:class:`~backend.federation.links.LinkStatus`).
    status: Mapped[str] = mapped_column(String(16), default="down")
    #: Gossip propagation age of the last heartbeat (seed 002's latency estimate).
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_heartbeat: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status_since: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SharedIocRow(Base):
    """An indicator a peer shared on ``aurora.ioc_sharing`` (one row per origin and IOC)."""

    __tablename__ = "federation_iocs"

    dedup_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    origin_site: Mapped[str] = mapped_column(String(32), index=True)
    type: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(2048))
    context: Mapped[str] = mapped_column(String(512), default="")
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RemoteAuditRow(Base):
    """A peer's audit event received on ``aurora.audit`` (stored once per event id)."""

    __tablename__ = "federation_audit"

    dedup_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    origin_site: Mapped[str] = mapped_column(String(32), index=True)
    event_id: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
