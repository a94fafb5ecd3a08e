"""The federation service of one site: composes the parts and owns their tasks (seed 002).

``create_app`` builds ``FederationService(settings, alerts, sessionmaker)`` when
``settings.federation_enabled`` (the settings validator has already refused combinations
the loops cannot work with), awaits :meth:`FederationService.start` in its lifespan and
:meth:`FederationService.aclose` on exit, and includes :attr:`FederationService.router`.

The parts, each in its own module::

    connection  MeshConnection   NATS session: connect with retries, JetStream setup
    heartbeats  Heartbeats       gossip loop and listener (rules in gossip, pure)
    publisher   Publisher        alert observer, queue, "publish until stored", re-offer
    consumer    PeerConsumer     one per peer: sourced stream, durable consumer, Inbox
    store       FederationStore  every SQL statement of the federation
    routes      build_router     the REST endpoints and their response models

Tasks (one TaskGroup owned by the service, cancelled and awaited by ``aclose``)::

    federation-connection   MeshConnection.run
    federation-gossip       Heartbeats.run
    federation-publisher    Publisher.run
    federation-known-peers  resume consuming the peers in the sites table (once)
    federation-republish    Publisher.republish_recent (once, at the first JetStream ready)
    federation-peer-<id>    PeerConsumer.run

Exactly once across partitions: the durable consumer and the sourced stream resume where
they stopped; ``Nats-Msg-Id`` drops retried publishes; ``ingest_remote`` drops anything
whose dedup key it has stored; own-origin echoes (the peer's AURORA also captures what we
publish while the link is up) are dropped by origin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter
from nats.aio.msg import Msg
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.federation.connection import RETRY, MeshConnection
from backend.federation.consumer import AlertSink, Inbox, PeerConsumer, PeerState
from backend.federation.counters import FederationCounters
from backend.federation.gossip import LinkThresholds
from backend.federation.heartbeats import Heartbeats
from backend.federation.jetstream import peer_stream_name
from backend.federation.messages import MeshMessage
from backend.federation.publisher import Publisher
from backend.federation.routes import (
    FederationHealth,
    FederationQueries,
    PeerHealth,
    SharedIocList,
    SiteList,
    Topology,
    build_router,
)
from backend.federation.store import FederationStore
from backend.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["AlertSink", "FederationService"]


class FederationService:
    """Health gossip, link states and alert federation of one site over NATS JetStream."""

    def __init__(
        self,
        settings: Settings,
        alerts: AlertSink,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        self.settings = settings
        self.site_id = settings.site_id
        self._alerts = alerts
        self.counters = FederationCounters()
        self.store = FederationStore(sessionmaker, self.site_id)
        self.connection = MeshConnection(
            settings.nats_url,
            self.site_id,
            on_health=self._on_health,
            on_ready=self._on_ready,
        )
        self.publisher = Publisher(
            site_id=self.site_id,
            min_severity=settings.federate_min_severity,
            connection=self.connection,
            store=self.store,
            counters=self.counters,
        )
        self.heartbeats = Heartbeats(
            site_id=self.site_id,
            site_name=settings.site_name,
            interval_s=settings.heartbeat_interval_seconds,
            thresholds=LinkThresholds(
                degraded_after_s=settings.link_degraded_after_s,
                down_after_s=settings.link_down_after_s,
            ),
            connection=self.connection,
            store=self.store,
            counters=self.counters,
            send=self.publisher.enqueue,
            learn_peer=self._learn_peer,
        )
        self._inbox = Inbox(self.site_id, alerts, self.store, self.counters)
        self._peers: dict[str, PeerState] = {}
        self._runner: asyncio.Task[None] | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._tg_ready = asyncio.Event()
        self._closed = False
        self.queries = FederationQueries(self.site_id, self.store, self.health)
        self.router: APIRouter = build_router(self.queries)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Register the alert observer and start the tasks; never waits for NATS."""
        if self._runner is not None:
            return
        self._alerts.add_observer(self.publisher.on_local_alert)
        self._runner = asyncio.create_task(self._run(), name=f"federation-{self.site_id}")
        await self._tg_ready.wait()

    async def aclose(self) -> None:
        """Cancel and await every task, close the NATS connection; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        await self.heartbeats.aclose()
        await self.connection.aclose()

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            self._spawn(self.connection.run, "federation-connection")
            self._spawn(self.heartbeats.run, "federation-gossip")
            self._spawn(self.publisher.run, "federation-publisher")
            self._spawn(self._load_known_peers, "federation-known-peers", restart=False)
            self._tg_ready.set()

    def _spawn(
        self, factory: Callable[[], Coroutine[Any, Any, None]], name: str, *, restart: bool = True
    ) -> asyncio.Task[None]:
        """Run ``factory()`` in the service's TaskGroup.

        With ``restart``, an unexpected exception is logged and the loop started again: a
        bug in one loop must not silently take the whole mesh (or the TaskGroup) down.
        """
        assert self._tg is not None
        return self._tg.create_task(self._supervise(factory, name, restart), name=name)

    async def _supervise(
        self, factory: Callable[[], Coroutine[Any, Any, None]], name: str, restart: bool
    ) -> None:
        while True:
            try:
                await factory()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("federation task %s failed%s", name, " (restarting)" * restart)
                if not restart:
                    return
                await asyncio.sleep(RETRY.max_s)

    # ------------------------------------------------------------------ wiring

    async def _on_health(self, msg: Msg) -> None:
        await self.heartbeats.on_health(msg)

    def _on_ready(self, generation: int) -> None:
        # The heartbeat now carries our domain: let the peers learn it at once.
        self.heartbeats.beat_now()
        if generation == 1:
            self._spawn(self.publisher.republish_recent, "federation-republish", restart=False)

    async def _load_known_peers(self) -> None:
        """After a restart, resume consuming peers known from the sites table."""
        try:
            peers = await self.store.known_peers()
        except SQLAlchemyError as error:
            log.warning("federation: cannot read known sites: %s", error)
            return
        for site_id, domain in peers:
            self._learn_peer(site_id, domain)

    def _learn_peer(self, site_id: str, domain: str) -> None:
        if site_id in self._peers:
            return
        peer = PeerState(site_id=site_id, domain=domain)
        self._peers[site_id] = peer
        self.heartbeats.beat_now()  # let the newcomer learn us now, not a heartbeat later
        log.info("federation: consuming site %s (JetStream domain %s)", site_id, domain)
        consumer = PeerConsumer(peer, self.site_id, self.connection, self._inbox)
        self._spawn(consumer.run, f"federation-peer-{site_id}")

    # ------------------------------------------------------------------ status and API

    @property
    def connected(self) -> bool:
        """True while the NATS connection is up."""
        return self.connection.connected

    @property
    def last_error(self) -> str | None:
        """The last connection or JetStream setup problem, None once it is set up."""
        return self.connection.last_error

    def enqueue(self, message: MeshMessage) -> bool:
        """Queue a message for the mesh; False (logged, counted) when the queue is full."""
        return self.publisher.enqueue(message)

    def health(self) -> FederationHealth:
        """Federation health for the topology endpoint (never raises)."""
        return FederationHealth(
            enabled=True,
            nats_url=self.connection.safe_url,
            nats_connected=self.connection.connected,
            jetstream_ready=self.connection.ready.is_set(),
            jetstream_domain=self.connection.domain,
            queue_depth=self.publisher.depth,
            last_error=self.connection.last_error,
            peers={
                peer.site_id: PeerHealth(
                    domain=peer.domain,
                    stream=peer_stream_name(peer.site_id),
                    consuming=peer.consuming,
                    last_error=peer.last_error,
                )
                for peer in self._peers.values()
            },
            counters=self.counters.as_json(),
        )

    async def list_sites(self) -> SiteList:
        """``GET /api/v1/sites``."""
        return await self.queries.list_sites()

    async def topology(self) -> Topology:
        """``GET /api/v1/system/topology``."""
        return await self.queries.topology()

    async def topology_json(self) -> dict[str, Any]:
        """The topology as the endpoint serves it (the console's live map)."""
        return (await self.topology()).model_dump(mode="json")

    async def shared_iocs(self, limit: int = 500) -> SharedIocList:
        """``GET /api/v1/federation/iocs``."""
        return await self.queries.shared_iocs(limit)
