"""Two-site federation over NATS JetStream (seed 002, issue 5).

Health gossip on ``aurora.federation.health.<site_id>`` keeps a site row per peer and one
undirected link row per pair; alerts at or above ``federate_min_severity`` travel on
``aurora.alerts.federation.<severity>`` (IOC sharing on ``aurora.ioc_sharing``, audit on
``aurora.audit``). Every site captures those subjects in its own JetStream stream ``AURORA``
(in its own domain) and *sources* each peer's ``AURORA`` across the leafnode into
``AURORA_FROM_<peer>``; a durable consumer on that stream persists remote alerts and acks
only after the write, so an alert raised while the link is down arrives once it heals.

Layout, by concern:

* pure rules: :mod:`.links` (link states), :mod:`.gossip` (which heartbeats count, link
  transitions as :class:`~.gossip.LinkChanged` events), :mod:`.messages` (payloads);
* transports: :mod:`.connection` (the NATS session), :mod:`.jetstream` (stream and
  consumer setup), :mod:`.heartbeats` (gossip on the wire), :mod:`.publisher` ("publish
  until stored"), :mod:`.consumer` (one durable consumer per peer);
* storage: :mod:`.store` (every SQL statement), :mod:`.tables` (the rows);
* :mod:`.routes` (REST endpoints with response models), :mod:`.service` (composes the
  parts and owns their TaskGroup). Cross-checks of the settings are a validator on
  :class:`backend.settings.Settings`.

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
