"""Link-state rules of the federation mesh (seed 002): pure functions, no I/O.

A link is the undirected pair of two sites, named ``link-<a>-<b>`` with the ids in
lexicographic order so both ends write the same row. Its status derives only from the age
of the last heartbeat heard from the peer: healthy below ``degraded_after_s``, degraded
below ``down_after_s``, down beyond (seed defaults 45 s / 120 s, settings so tests shrink
them).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum


class LinkStatus(StrEnum):
    """State of the link between two sites, from the age of the last heartbeat."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    DOWN = "down"


class SiteStatus(StrEnum):
    """State of a site as this site sees it (the local site is always online)."""

    ONLINE = "online"
    DEGRADED = "degraded"
    OFFLINE = "offline"


def link_id(site_a: str, site_b: str) -> str:
    """The undirected link name ``link-<a>-<b>`` (ids sorted), the same from both ends."""
    if site_a == site_b:
        raise ValueError(f"a link joins two different sites, got {site_a!r} twice")
    first, second = sorted((site_a, site_b))
    return f"link-{first}-{second}"


def link_status(
    heartbeat_age_s: float | None, *, degraded_after_s: float, down_after_s: float
) -> LinkStatus:
    """Status of a link whose peer was last heard ``heartbeat_age_s`` ago (None: never).

    A negative age (the peer's clock runs ahead) counts as fresh: the heartbeat did arrive.
    """
    if degraded_after_s <= 0 or down_after_s < degraded_after_s:
        raise ValueError(
            "link thresholds must satisfy 0 < degraded_after_s <= down_after_s, got "
            f"degraded_after_s={degraded_after_s}, down_after_s={down_after_s}"
        )
    if heartbeat_age_s is None:
        return LinkStatus.DOWN
    if heartbeat_age_s < degraded_after_s:
        return LinkStatus.HEALTHY
    if heartbeat_age_s < down_after_s:
        return LinkStatus.DEGRADED
    return LinkStatus.DOWN


def site_status_for(status: LinkStatus) -> SiteStatus:
    """How a peer site is shown, given the link that reaches it."""
    return {
        LinkStatus.HEALTHY: SiteStatus.ONLINE,
        LinkStatus.DEGRADED: SiteStatus.DEGRADED,
        LinkStatus.DOWN: SiteStatus.OFFLINE,
    }[status]


def heartbeat_age_s(last_heartbeat: datetime | None, now: datetime) -> float | None:
    """Seconds since ``last_heartbeat`` (both timezone-aware), None when never heard."""
    if last_heartbeat is None:
        return None
    return (now - last_heartbeat).total_seconds()


def propagation_latency_ms(sent_at: datetime, received_at: datetime) -> float:
    """Gossip propagation age in ms, the link latency estimate of seed 002.

    Honest on one host, clock-skew-sensitive across real WANs (the seed says so); a
    negative value (skew) is clamped to 0 rather than reported as a time machine.
    """
    return max(0.0, (received_at - sent_at).total_seconds() * 1000.0)
