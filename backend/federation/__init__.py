"""Two-site federation over NATS JetStream (seed 002, issue 5).

Health gossip on ``aurora.federation.health.<site_id>`` keeps a site row per peer and one
undirected link row per pair; alerts at or above ``federate_min_severity`` travel on
``aurora.alerts.federation.<severity>`` (IOC sharing on ``aurora.ioc_sharing``, audit on
``aurora.audit``). Every site captures those subjects in its own JetStream stream ``AURORA``
(in its own domain) and *sources* each peer's ``AURORA`` across the leafnode into
``AURORA_FROM_<peer>``; a durable consumer on that stream persists remote alerts and acks
only after the write, so an alert raised while the link is down arrives once it heals.

Layout: :mod:`.links` and :mod:`.messages` are pure (no I/O), :mod:`.jetstream` moves
bytes, :mod:`.service` owns the tasks, :mod:`.tables` holds the site/link rows.

Exception tree::

    FederationError
    ├── FederationMessageError   a federation message that cannot be understood (dropped)
    └── JetStreamSetupError      a stream or consumer could not be created (retried)
"""

from backend.federation.errors import (
    FederationError,
    FederationMessageError,
    JetStreamSetupError,
)

__all__ = ["FederationError", "FederationMessageError", "JetStreamSetupError"]
