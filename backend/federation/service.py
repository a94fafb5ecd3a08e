"""The federation service of one site: gossip, link states, alert federation (seed 002).

``create_app`` builds ``FederationService(settings, alerts, sessionmaker)`` when
``settings.federation_enabled``, awaits :meth:`FederationService.start` in its lifespan and
:meth:`FederationService.aclose` on exit, and includes :attr:`FederationService.router`.

Tasks (one TaskGroup owned by the service, cancelled and awaited by ``aclose``)::

    connection   connect to NATS with retries (the backend starts while NATS is down),
                 create the AURORA stream, redo it after every reconnect
    gossip       every heartbeat: publish health, refresh the local site row, demote
                 silent links (healthy -> degraded -> down)
    publisher    drain the outgoing queue into JetStream; a failed publish is retried in
                 order until it lands, so the local alert write never waits on the mesh
    peer-<id>    one per peer learned from gossip (or from the sites table after a
                 restart): source the peer's AURORA into AURORA_FROM_<id> and consume it
                 with a durable pull consumer, acking after the database write

Exactly once across partitions: the durable consumer and the sourced stream resume where
they stopped; ``Nats-Msg-Id`` drops retried publishes; ``ingest_remote`` drops anything
whose dedup key it has stored; own-origin echoes (the peer's AURORA also captures what we
publish while the link is up) are dropped by origin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import nats
import nats.errors
import nats.js.errors
from fastapi import APIRouter
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.contract import Severity
from backend.errors import StartupError
from backend.federation.errors import FederationError, FederationMessageError
from backend.federation.jetstream import (
    consumer_name,
    ensure_consumer,
    ensure_stream,
    local_domain,
    origin_stream_config,
    peer_consumer_config,
    peer_stream_config,
    peer_stream_name,
)
from backend.federation.links import (
    LinkStatus,
    SiteStatus,
    heartbeat_age_s,
    link_id,
    link_status,
    propagation_latency_ms,
    site_status_for,
)
from backend.federation.messages import (
    HEALTH_SUBJECT_WILDCARD,
    AlertLike,
    FederatedAlert,
    FederatedAudit,
    HealthPayload,
    IocShare,
    MeshMessage,
    build_federated_alert,
    decode_health,
    decode_mesh_message,
    dedup_key,
    encode_message,
    health_subject,
    should_federate,
)
from backend.federation.tables import RemoteAuditRow, SharedIocRow, SiteLinkRow, SiteRow
from backend.settings import Settings
from backend.store import Alert, as_utc, iso, utcnow

log = logging.getLogger(__name__)

#: Outgoing messages held while NATS is unreachable; beyond this the oldest are refused
#: (logged and counted) rather than growing without bound.
QUEUE_LIMIT = 10_000
#: After a restart, local alerts this recent are published again: what was already stored
#: is dropped by the stream's duplicate window (jetstream.DUPLICATE_WINDOW_S, longer than
#: this), what a crash left in the in-memory queue goes out now.
REPUBLISH_WINDOW_S = 3000.0
REPUBLISH_LIMIT = 2000
#: Immediate re-publishes when the peer's stream acked first (see _publish_until_stored).
FOREIGN_ACK_RETRIES = 5
FETCH_BATCH = 64
FETCH_TIMEOUT_S = 1.0
RETRY_MIN_S = 0.1
RETRY_MAX_S = 2.0

_NATS_ERRORS: tuple[type[BaseException], ...] = (
    nats.errors.Error,
    OSError,
    TimeoutError,
    FederationError,
)


class AlertSink(Protocol):
    """The part of ``backend.alerts.AlertService`` the federation uses."""

    def add_observer(self, callback: Callable[[Any], Awaitable[None]]) -> None:
        """Call ``callback(record)`` after every locally raised alert."""

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
        iocs: Any = (),
        details: dict[str, Any] | None = None,
        created_at: datetime | None = None,
        source: str | None = None,
    ) -> Any | None:
        """Persist a peer alert once; None when its dedup key was stored before."""


@dataclass
class FederationCounters:
    """What the mesh did since start (shown by the topology endpoint and in gossip)."""

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


@dataclass
class PeerState:
    """A peer this site federates with and the state of its consumer."""

    site_id: str
    domain: str
    consuming: bool = False
    last_error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class FederationService:
    """Health gossip, link states and alert federation of one site over NATS JetStream."""

    def __init__(
        self,
        settings: Settings,
        alerts: AlertSink,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        _check_settings(settings)
        self.settings = settings
        self.site_id = settings.site_id
        self._alerts = alerts
        self._sessionmaker = sessionmaker
        self.counters = FederationCounters()
        self._queue: asyncio.Queue[MeshMessage] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self._peers: dict[str, PeerState] = {}
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._domain: str | None = None
        #: Set while connected with the AURORA stream in place.
        self._ready = asyncio.Event()
        #: Bumped at every (re)connect so consumers re-check their stream and consumer.
        self._generation = 0
        self._setup_needed = asyncio.Event()
        #: Cuts the gossip wait short: when JetStream becomes ready (the heartbeat then
        #: carries our domain) and when a new peer appears, so two sites find each other
        #: in milliseconds, not after a 15 s heartbeat interval.
        self._beat_now = asyncio.Event()
        self._started_monotonic = time.monotonic()
        self._runner: asyncio.Task[None] | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._tg_ready = asyncio.Event()
        self._closed = False
        #: Gossip and the heartbeat listener update the same rows: one writer at a time.
        self._rows_lock = asyncio.Lock()
        self.last_error: str | None = None
        self.router = self._build_router()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Register the alert observer and start the tasks; never waits for NATS."""
        if self._runner is not None:
            return
        self._alerts.add_observer(self._on_local_alert)
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
        nc, self._nc = self._nc, None
        self._ready.clear()
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(*_NATS_ERRORS):
                await nc.close()

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            self._spawn(self._connection_loop, "federation-connection")
            self._spawn(self._gossip_loop, "federation-gossip")
            self._spawn(self._publisher_loop, "federation-publisher")
            self._spawn(self._load_known_peers, "federation-known-peers", restart=False)
            self._tg_ready.set()

    # ------------------------------------------------------------------ status

    @property
    def connected(self) -> bool:
        """True while the NATS connection is up."""
        return self._nc is not None and self._nc.is_connected

    def health(self) -> dict[str, Any]:
        """Federation health for /healthz-style reporting (never raises)."""
        return {
            "enabled": True,
            "nats_url": _without_credentials(self.settings.nats_url),
            "nats_connected": self.connected,
            "jetstream_ready": self._ready.is_set(),
            "jetstream_domain": self._domain,
            "queue_depth": self._queue.qsize(),
            "last_error": self.last_error,
            "peers": {
                peer.site_id: {
                    "domain": peer.domain,
                    "stream": peer_stream_name(peer.site_id),
                    "consuming": peer.consuming,
                    "last_error": peer.last_error,
                }
                for peer in self._peers.values()
            },
            "counters": self.counters.as_json(),
        }

    # ------------------------------------------------------------------ connection

    async def _connection_loop(self) -> None:
        url = self.settings.nats_url
        if not url:
            self.last_error = "AURORA_NATS_URL is not set; federation cannot connect"
            log.error(self.last_error)
            return
        delay = RETRY_MIN_S
        if self._nc is not None:  # restarted by the supervisor: only the setup part again
            self._setup_needed.set()
        while self._nc is None:
            nc: NatsClient | None = None
            try:
                nc = await nats.connect(
                    url,
                    name=f"aurora-backend-{self.site_id}",
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    connect_timeout=2,
                    error_cb=self._on_nats_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                )
                # Subscribed before the client is published to the other tasks: the
                # subscription then exists for the whole life of the connection (nats-py
                # re-subscribes it after every reconnect).
                await nc.subscribe(HEALTH_SUBJECT_WILDCARD, cb=self._on_health)
            except _NATS_ERRORS as error:
                if nc is not None:
                    with contextlib.suppress(*_NATS_ERRORS):
                        await nc.close()
                self.last_error = f"cannot connect to NATS at {url}: {error!r}"
                log.warning("%s (retrying)", self.last_error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            self._nc = nc
            self._js = nc.jetstream()
            self._setup_needed.set()
        assert self._js is not None
        while True:
            await self._setup_needed.wait()
            self._setup_needed.clear()
            try:
                self._domain = await local_domain(self._js)
                await ensure_stream(self._js, origin_stream_config())
            except _NATS_ERRORS as error:
                self._ready.clear()
                self.last_error = f"JetStream setup failed: {error}"
                log.warning("%s (retrying)", self.last_error)
                await asyncio.sleep(RETRY_MAX_S)
                self._setup_needed.set()
                continue
            self.last_error = None
            self._generation += 1
            self._ready.set()
            self._beat_now.set()
            log.info("federation: JetStream ready (domain %s)", self._domain)
            if self._generation == 1:
                self._spawn(self._republish_recent, "federation-republish", restart=False)

    async def _on_nats_error(self, error: Exception) -> None:
        self.last_error = f"NATS at {self.settings.nats_url}: {error!r}"
        log.debug("nats error: %r", error)

    async def _on_disconnected(self) -> None:
        self._ready.clear()
        log.warning("federation: disconnected from NATS, reconnecting")

    async def _on_reconnected(self) -> None:
        log.info("federation: reconnected to NATS")
        # The server may have restarted with its store: check streams and consumers again.
        self._setup_needed.set()

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
                await asyncio.sleep(RETRY_MAX_S)

    # ------------------------------------------------------------------ outgoing

    async def _on_local_alert(self, record: AlertLike) -> None:
        """Alert observer: queue a federated copy (and its IOCs); never blocks."""
        origin = getattr(record, "origin_site", None)
        if origin not in (None, self.site_id):
            return  # a peer's alert is never re-federated
        if should_federate(record.severity, self.settings.federate_min_severity):
            self.enqueue(build_federated_alert(record, self.site_id))
        if record.iocs:
            share = IocShare(
                origin_site=self.site_id,
                share_id=str(record.id),
                iocs=record.iocs,
                context=f"{record.type}: {record.title}"[:512],
                shared_at=utcnow(),
            )
            if share.iocs:
                self.enqueue(share)

    def enqueue(self, message: MeshMessage) -> bool:
        """Queue a message for the mesh; False (logged, counted) when the queue is full."""
        if self._queue.full():
            self.counters.dropped_queue_full += 1
            log.error(
                "federation queue full (%d messages, NATS unreachable?): %s not sent",
                QUEUE_LIMIT,
                message.msg_id,
            )
            return False
        self._queue.put_nowait(message)
        return True

    async def _publisher_loop(self) -> None:
        while True:
            message = await self._queue.get()
            await self._publish_until_stored(message)

    async def _publish_until_stored(self, message: MeshMessage) -> None:
        subject = message.subject
        data = encode_message(message)
        delay = RETRY_MIN_S
        foreign_acks = 0
        while True:
            await self._ready.wait()
            assert self._js is not None
            try:
                ack = await self._js.publish(
                    subject, data, timeout=2.0, headers={"Nats-Msg-Id": message.msg_id}
                )
            except _NATS_ERRORS as error:
                self.counters.publish_retries += 1
                log.warning("federation publish of %s failed: %r (retrying)", message.msg_id, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            if self._domain is not None and ack.domain not in (None, self._domain):
                # The peer's AURORA captures our subjects across the leafnode and answers
                # first about one time in three; only our own stream is what the peer
                # sources, so publish again (the Nats-Msg-Id makes the copy a no-op
                # wherever it was stored). Immediately at first, backing off if our stream
                # keeps not answering (JetStream unavailable here).
                self.counters.publish_retries += 1
                foreign_acks += 1
                if foreign_acks > FOREIGN_ACK_RETRIES:
                    if foreign_acks == FOREIGN_ACK_RETRIES + 1:
                        log.warning(
                            "federation publish of %s: only domain %r answers, not ours (%r)",
                            message.msg_id,
                            ack.domain,
                            self._domain,
                        )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_S)
                continue
            self.counters.published += 1
            return

    async def _republish_recent(self) -> None:
        """Publish recent local federable alerts again (see REPUBLISH_WINDOW_S)."""
        cutoff = utcnow() - timedelta(seconds=REPUBLISH_WINDOW_S)
        minimum = Severity(self.settings.federate_min_severity)
        wanted = [s for s in Severity if s.rank >= minimum.rank]
        try:
            async with self._sessionmaker() as session:
                rows = (
                    await session.scalars(
                        select(Alert)
                        .where(
                            Alert.created_at >= cutoff,
                            Alert.severity.in_(wanted),
                            Alert.dedup_key.is_(None),
                            (Alert.origin_site == self.site_id) | Alert.origin_site.is_(None),
                        )
                        .order_by(Alert.created_at)
                        .limit(REPUBLISH_LIMIT)
                    )
                ).all()
        except SQLAlchemyError as error:
            log.warning("federation: cannot read recent alerts to republish: %s", error)
            return
        for row in rows:
            # build_federated_alert takes SQLite's naive created_at as UTC.
            self.enqueue(build_federated_alert(row, self.site_id))
        if rows:
            log.info("federation: re-offered %d recent local alerts to the mesh", len(rows))

    # ------------------------------------------------------------------ gossip

    def _health_payload(self, now: datetime) -> HealthPayload:
        return HealthPayload(
            site_id=self.site_id,
            site_name=self.settings.site_name or self.site_id,
            sent_at=now,
            jetstream_domain=self._domain,
            nats_connected=self.connected,
            messages_published=self.counters.published,
            alerts_received=self.counters.alerts_received,
            uptime_s=round(time.monotonic() - self._started_monotonic, 3),
        )

    async def _gossip_loop(self) -> None:
        interval = self.settings.heartbeat_interval_seconds
        while True:
            now = utcnow()
            payload = self._health_payload(now)
            nc = self._nc
            if nc is not None and nc.is_connected:
                try:
                    await nc.publish(health_subject(self.site_id), encode_message(payload))
                except _NATS_ERRORS as error:
                    log.debug("heartbeat not sent: %r", error)
            try:
                async with self._rows_lock:
                    await self._refresh_local_site(payload, now)
                    await self._mark_stale_links(now)
            except SQLAlchemyError as error:
                log.warning("federation: site/link rows not refreshed: %s", error)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._beat_now.wait()
            self._beat_now.clear()

    async def _refresh_local_site(self, payload: HealthPayload, now: datetime) -> None:
        async with self._sessionmaker.begin() as session:
            row = await session.get(SiteRow, self.site_id)
            if row is None:
                row = SiteRow(site_id=self.site_id, is_local=True)
                session.add(row)
            row.name = payload.site_name
            row.is_local = True
            row.status = SiteStatus.ONLINE.value
            row.jetstream_domain = self._domain
            row.last_heartbeat = now
            row.health = payload.model_dump(mode="json")
            row.updated_at = now

    async def _mark_stale_links(self, now: datetime) -> None:
        changes: list[tuple[str, str, LinkStatus]] = []
        async with self._sessionmaker.begin() as session:
            links = (await session.scalars(select(SiteLinkRow))).all()
            for link in links:
                last = as_utc(link.last_heartbeat) if link.last_heartbeat else None
                status = self._link_status(heartbeat_age_s(last, now))
                if status.value == link.status:
                    continue
                link.status = status.value
                link.status_since = now
                link.updated_at = now
                peer_id = link.site_b if link.site_a == self.site_id else link.site_a
                peer = await session.get(SiteRow, peer_id)
                if peer is not None:
                    peer.status = site_status_for(status).value
                    peer.updated_at = now
                changes.append((link.link_id, peer_id, status))
        for name, peer_id, status in changes:
            self._audit_link_change(name, peer_id, status, now)

    def _link_status(self, age_s: float | None) -> LinkStatus:
        return link_status(
            age_s,
            degraded_after_s=self.settings.link_degraded_after_s,
            down_after_s=self.settings.link_down_after_s,
        )

    def _audit_link_change(
        self, name: str, peer_id: str, status: LinkStatus, now: datetime
    ) -> None:
        log.info("federation: %s is now %s", name, status.value)
        self.enqueue(
            FederatedAudit(
                origin_site=self.site_id,
                event_id=f"{name}-{status.value}-{now.timestamp():.6f}",
                type="link_status_changed",
                data={"link_id": name, "peer": peer_id, "status": status.value},
                at=now,
            )
        )

    async def _on_health(self, msg: Msg) -> None:
        try:
            payload = decode_health(msg.data)
        except FederationMessageError as error:
            self.counters.unreadable += 1
            log.warning("%s", error)
            return
        if payload.site_id == self.site_id:
            return
        if msg.subject != health_subject(payload.site_id):
            self.counters.unreadable += 1
            log.warning("heartbeat of %r arrived on %r: ignored", payload.site_id, msg.subject)
            return
        self.counters.heartbeats_received += 1
        received = utcnow()
        try:
            async with self._rows_lock:
                changed = await self._record_heartbeat(payload, received)
        except SQLAlchemyError as error:
            log.warning("federation: heartbeat of %s not recorded: %s", payload.site_id, error)
            return
        if changed is not None:
            self._audit_link_change(
                link_id(self.site_id, payload.site_id), payload.site_id, changed, received
            )
        if payload.jetstream_domain:
            self._learn_peer(payload.site_id, payload.jetstream_domain)

    async def _record_heartbeat(
        self, payload: HealthPayload, received: datetime
    ) -> LinkStatus | None:
        """Upsert the peer site and the link; returns the new link status if it changed."""
        name = link_id(self.site_id, payload.site_id)
        status = self._link_status(0.0)
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
            link = await session.get(SiteLinkRow, name)
            previous = None if link is None else link.status
            if link is None:
                first, second = sorted((self.site_id, payload.site_id))
                link = SiteLinkRow(link_id=name, site_a=first, site_b=second)
                link.status_since = received
                session.add(link)
            elif link.status != status.value:
                link.status_since = received
            link.status = status.value
            link.latency_ms = round(propagation_latency_ms(payload.sent_at, received), 3)
            link.last_heartbeat = received
            link.updated_at = received
        return None if previous == status.value else status

    # ------------------------------------------------------------------ incoming

    async def _load_known_peers(self) -> None:
        """After a restart, resume consuming peers known from the sites table."""
        try:
            async with self._sessionmaker() as session:
                rows = (
                    await session.scalars(select(SiteRow).where(SiteRow.is_local.is_(False)))
                ).all()
        except SQLAlchemyError as error:
            log.warning("federation: cannot read known sites: %s", error)
            return
        for row in rows:
            if row.jetstream_domain and row.site_id != self.site_id:
                self._learn_peer(row.site_id, row.jetstream_domain)

    def _learn_peer(self, site_id: str, domain: str) -> None:
        peer = self._peers.get(site_id)
        if peer is not None:
            return
        peer = PeerState(site_id=site_id, domain=domain)
        self._peers[site_id] = peer
        self._beat_now.set()  # let the newcomer learn us now, not a heartbeat later
        log.info("federation: consuming site %s (JetStream domain %s)", site_id, domain)
        peer.task = self._spawn(lambda: self._consume_peer(peer), f"federation-peer-{site_id}")

    async def _consume_peer(self, peer: PeerState) -> None:
        stream = peer_stream_name(peer.site_id)
        durable = consumer_name(self.site_id)
        delay = RETRY_MIN_S
        while True:
            await self._ready.wait()
            js = self._js
            assert js is not None
            generation = self._generation
            try:
                await ensure_stream(js, peer_stream_config(peer.site_id, peer.domain))
                await ensure_consumer(js, stream, peer_consumer_config(self.site_id))
                sub = await js.pull_subscribe_bind(durable=durable, stream=stream)
            except _NATS_ERRORS as error:
                peer.consuming = False
                peer.last_error = str(error)
                log.warning("federation: consumer for %s not ready: %s", peer.site_id, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            peer.consuming = True
            peer.last_error = None
            try:
                while generation == self._generation:
                    try:
                        batch = await sub.fetch(FETCH_BATCH, timeout=FETCH_TIMEOUT_S)
                    except TimeoutError:  # nats' own TimeoutError derives from it
                        continue
                    for index, msg in enumerate(batch):
                        try:
                            await self._handle(msg)
                        except asyncio.CancelledError:
                            await _give_back(batch[index:])
                            raise
                    delay = RETRY_MIN_S
            except _NATS_ERRORS as error:
                peer.consuming = False
                peer.last_error = str(error)
                log.warning("federation: consuming %s failed: %r (retrying)", peer.site_id, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            finally:
                with contextlib.suppress(*_NATS_ERRORS):
                    await sub.unsubscribe()

    async def _handle(self, msg: Msg) -> None:
        """Persist one sourced message, then ack; unreadable ones are terminated."""
        try:
            message = decode_mesh_message(msg.subject, msg.data)
        except FederationMessageError as error:
            self.counters.unreadable += 1
            log.warning("%s (dropped)", error)
            await msg.term()
            return
        if message.origin_site == self.site_id:
            self.counters.echoes_dropped += 1
            await msg.ack()
            return
        try:
            await self._persist(message)
        except SQLAlchemyError as error:
            # Not acked: JetStream redelivers once the database is back.
            log.warning("federation: %s not stored, will retry: %s", message.msg_id, error)
            await msg.nak(delay=1.0)
            return
        except Exception:
            # Anything else (e.g. Redis down after the row was written): redelivered later,
            # where the dedup key turns it into an ack; the consumer itself goes on.
            log.exception("federation: handling %s failed, will retry", message.msg_id)
            await msg.nak(delay=1.0)
            return
        await msg.ack()

    async def _persist(self, message: MeshMessage) -> None:
        if isinstance(message, FederatedAlert):
            await self._persist_alert(message)
        elif isinstance(message, IocShare):
            await self._persist_iocs(message)
        else:
            await self._persist_audit(message)

    async def _persist_alert(self, alert: FederatedAlert) -> None:
        received = utcnow()
        details = dict(alert.details)
        details["federation"] = {
            "origin_site": alert.origin_site,
            "origin_alert_id": alert.origin_alert_id,
            "origin_created_at": iso(alert.created_at),
            "federated_at": iso(alert.federated_at),
            "received_at": iso(received),
        }
        stored = await self._alerts.ingest_remote(
            type=alert.type,
            severity=alert.severity,
            title=alert.title,
            origin_site=alert.origin_site,
            origin_alert_id=alert.origin_alert_id,
            dedup_key=alert.dedup_key,
            description=alert.description,
            device_id=alert.device_id,
            iocs=alert.iocs,
            details=details,
            created_at=alert.created_at,
            source=f"federation:{alert.origin_site}",
        )
        if stored is None:
            self.counters.duplicates += 1
        else:
            self.counters.alerts_received += 1

    async def _persist_iocs(self, share: IocShare) -> None:
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
        self.counters.iocs_received += len(share.iocs)

    async def _persist_audit(self, event: FederatedAudit) -> None:
        key = dedup_key(event.origin_site, event.event_id)
        async with self._sessionmaker.begin() as session:
            if await session.get(RemoteAuditRow, key) is not None:
                self.counters.duplicates += 1
                return
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
        self.counters.audit_received += 1

    # ------------------------------------------------------------------ API

    def _build_router(self) -> APIRouter:
        router = APIRouter(tags=["federation"])
        router.add_api_route("/api/v1/sites", self.list_sites, methods=["GET"])
        router.add_api_route("/api/v1/system/topology", self.topology, methods=["GET"])
        router.add_api_route("/api/v1/federation/iocs", self.shared_iocs, methods=["GET"])
        return router

    async def list_sites(self) -> dict[str, Any]:
        """``GET /api/v1/sites``: this site and every peer heard, with their status."""
        async with self._sessionmaker() as session:
            sites = (await session.scalars(select(SiteRow).order_by(SiteRow.site_id))).all()
        return {"local_site": self.site_id, "items": [_site_json(row) for row in sites]}

    async def topology(self) -> dict[str, Any]:
        """``GET /api/v1/system/topology``: sites as nodes, links as edges, mesh health."""
        async with self._sessionmaker() as session:
            sites = (await session.scalars(select(SiteRow).order_by(SiteRow.site_id))).all()
            links = (await session.scalars(select(SiteLinkRow).order_by(SiteLinkRow.link_id))).all()
        return {
            "local_site": self.site_id,
            "nodes": [_site_json(row) for row in sites],
            "links": [_link_json(row) for row in links],
            "federation": self.health(),
        }

    async def shared_iocs(self, limit: int = 500) -> dict[str, Any]:
        """``GET /api/v1/federation/iocs``: indicators peers shared, newest first."""
        async with self._sessionmaker() as session:
            rows = (
                await session.scalars(
                    select(SharedIocRow)
                    .order_by(SharedIocRow.last_seen.desc())
                    .limit(max(1, min(limit, 5000)))
                )
            ).all()
        return {
            "items": [
                {
                    "type": row.type,
                    "value": row.value,
                    "origin_site": row.origin_site,
                    "context": row.context,
                    "first_seen": iso(row.first_seen),
                    "last_seen": iso(row.last_seen),
                }
                for row in rows
            ]
        }


def _without_credentials(url: str | None) -> str | None:
    """The URL as safe to show: user and password (or token) removed."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


async def _give_back(messages: list[Msg]) -> None:
    """Nak fetched messages that will not be handled (shutdown): redelivered at once
    to whoever consumes next instead of after the ack wait."""
    for msg in messages:
        with contextlib.suppress(*_NATS_ERRORS, asyncio.CancelledError):
            await msg.nak()


def _check_settings(settings: Settings) -> None:
    """Refuse settings the loops cannot work with, at startup and with what to change."""
    problems: list[str] = []
    if not settings.nats_url:
        problems.append("AURORA_FEDERATION_ENABLED=true needs AURORA_NATS_URL (nats://host:port)")
    if settings.heartbeat_interval_seconds <= 0:
        problems.append(
            "AURORA_HEARTBEAT_INTERVAL_SECONDS must be > 0, "
            f"got {settings.heartbeat_interval_seconds}"
        )
    if not 0 < settings.link_degraded_after_s <= settings.link_down_after_s:
        problems.append(
            "need 0 < AURORA_LINK_DEGRADED_AFTER_S <= AURORA_LINK_DOWN_AFTER_S, got "
            f"{settings.link_degraded_after_s} and {settings.link_down_after_s}"
        )
    elif settings.link_degraded_after_s <= settings.heartbeat_interval_seconds:
        problems.append(
            f"AURORA_LINK_DEGRADED_AFTER_S ({settings.link_degraded_after_s}) must exceed "
            f"AURORA_HEARTBEAT_INTERVAL_SECONDS ({settings.heartbeat_interval_seconds}), "
            "or a healthy link flaps to degraded between two heartbeats"
        )
    if problems:
        raise StartupError("federation settings: " + "; ".join(problems))


def _site_json(row: SiteRow) -> dict[str, Any]:
    return {
        "site_id": row.site_id,
        "name": row.name,
        "is_local": row.is_local,
        "status": row.status,
        "jetstream_domain": row.jetstream_domain,
        "last_heartbeat": iso(row.last_heartbeat),
        "health": row.health,
    }


def _link_json(row: SiteLinkRow) -> dict[str, Any]:
    return {
        "link_id": row.link_id,
        "site_a": row.site_a,
        "site_b": row.site_b,
        "status": row.status,
        "latency_ms": row.latency_ms,
        "last_heartbeat": iso(row.last_heartbeat),
        "status_since": iso(row.status_since),
    }
