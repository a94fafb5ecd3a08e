"""What the mesh did since start: one mutable tally shared by the federation's parts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FederationCounters:
    """Counts shown by the topology endpoint and carried in gossip.

    One instance per :class:`~backend.federation.service.FederationService`, handed to the
    publisher, the heartbeat listener and the peer consumers (all on one event loop).
    """

    published: int = 0
    publish_retries: int = 0
    dropped_queue_full: int = 0
    alerts_received: int = 0
    duplicates: int = 0
    echoes_dropped: int = 0
    unreadable: int = 0
    iocs_received: int = 0
    audit_received: int = 0
    heartbeats_received: int = 0

    def as_json(self) -> dict[str, int]:
        """Plain dict for JSON."""
        return dict(self.__dict__)
