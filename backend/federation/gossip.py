"""Gossip rules of the mesh (seed 002): which heartbeats count and how links move. Pure.

Nothing here touches NATS or the database: the heartbeat listener and the store feed in
what they read and act on the :class:`LinkChanged` events that come back (write the rows,
send the ``link_status_changed`` audit to the peers).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from backend.federation.links import LinkStatus, heartbeat_age_s, link_status
from backend.federation.messages import FederatedAudit, HealthPayload, health_subject


@dataclass(frozen=True, slots=True)
class LinkThresholds:
    """Heartbeat ages at which a link turns degraded and down (settings)."""

    degraded_after_s: float
    down_after_s: float

    def status(self, age_s: float | None) -> LinkStatus:
        """Status of a link whose peer was heard ``age_s`` ago (None: never)."""
        return link_status(
            age_s, degraded_after_s=self.degraded_after_s, down_after_s=self.down_after_s
        )


@dataclass(frozen=True, slots=True)
class LinkSnapshot:
    """What the store knows of one link row, as the rules need it."""

    link_id: str
    site_a: str
    site_b: str
    status: str
    last_heartbeat: datetime | None

    def peer_of(self, local_site: str) -> str:
        """The other end of the link, seen from ``local_site``."""
        return self.site_b if self.site_a == local_site else self.site_a


@dataclass(frozen=True, slots=True)
class LinkChanged:
    """Event: the link to ``peer_id`` is now ``status`` (since ``at``)."""

    link_id: str
    peer_id: str
    status: LinkStatus
    at: datetime

    def audit(self, local_site: str) -> FederatedAudit:
        """The ``link_status_changed`` audit event sent to the peers."""
        return FederatedAudit(
            origin_site=local_site,
            event_id=f"{self.link_id}-{self.status.value}-{self.at.timestamp():.6f}",
            type="link_status_changed",
            data={"link_id": self.link_id, "peer": self.peer_id, "status": self.status.value},
            at=self.at,
        )


#: Request/reply subject on which a site answers echo probes (its site id appended).
ECHO_SUBJECT_PREFIX = "aurora.federation.echo."


def echo_subject(site_id: str) -> str:
    """Where ``site_id``'s backend answers echo probes."""
    return f"{ECHO_SUBJECT_PREFIX}{site_id}"


def link_latency_ms(gossip_age_ms: float, echo_rtt_ms: float | None) -> float:
    """The link latency to show: half the last echo round trip when one was measured.

    Seed 002's estimate, the age of a heartbeat on arrival, subtracts two clocks and so is
    off by their skew; an echo times one round trip on one clock. Until the first echo
    returns (or while none does), the gossip age stands in.
    """
    if echo_rtt_ms is None:
        return gossip_age_ms
    return round(echo_rtt_ms / 2.0, 3)


class HeartbeatVerdict(StrEnum):
    """What to do with a decoded heartbeat."""

    ACCEPT = "accept"
    OWN = "own"  # our own heartbeat, looped back by the subscription: ignore quietly
    MISROUTED = "misrouted"  # a site claiming another's subject: ignore and count


def judge_heartbeat(local_site: str, subject: str, payload: HealthPayload) -> HeartbeatVerdict:
    """Whether a heartbeat on ``subject`` is one to record."""
    if payload.site_id == local_site:
        return HeartbeatVerdict.OWN
    if subject != health_subject(payload.site_id):
        return HeartbeatVerdict.MISROUTED
    return HeartbeatVerdict.ACCEPT


def status_on_heartbeat(thresholds: LinkThresholds) -> LinkStatus:
    """A link that just carried a heartbeat (age 0)."""
    return thresholds.status(0.0)


def change_on_heartbeat(
    link_id: str, peer_id: str, previous: str | None, status: LinkStatus, at: datetime
) -> LinkChanged | None:
    """The event a heartbeat causes, None when the link was already ``status``."""
    if previous == status.value:
        return None
    return LinkChanged(link_id=link_id, peer_id=peer_id, status=status, at=at)


def stale_link_changes(
    local_site: str, links: Iterable[LinkSnapshot], now: datetime, thresholds: LinkThresholds
) -> list[LinkChanged]:
    """Links whose status the silence since their last heartbeat changes at ``now``."""
    changes: list[LinkChanged] = []
    for link in links:
        status = thresholds.status(heartbeat_age_s(link.last_heartbeat, now))
        if status.value != link.status:
            changes.append(
                LinkChanged(
                    link_id=link.link_id, peer_id=link.peer_of(local_site), status=status, at=now
                )
            )
    return changes
