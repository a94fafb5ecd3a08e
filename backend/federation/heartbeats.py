"""Health gossip on the wire: send this site's heartbeat, record the peers'.

Every ``heartbeat_interval_seconds`` (or at once when :meth:`Heartbeats.beat_now` is
called: JetStream became ready, a new peer appeared) the loop publishes this site's
:class:`~.messages.HealthPayload`, refreshes its own site row and demotes silent links. The
listener records each peer heartbeat. The rules (:mod:`.gossip`) decide; this module only
moves bytes and rows and turns each :class:`~.gossip.LinkChanged` into an audit message.

With each beat the loop also sends every peer heard so far an echo probe (NATS
request/reply on :func:`~.gossip.echo_subject`) and times the round trip on this site's
monotonic clock: half of it is the link latency the topology shows, free of the clock
skew that makes a heartbeat's age (seed 002's estimate) unreliable across machines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime

from nats.aio.msg import Msg
from sqlalchemy.exc import SQLAlchemyError

from backend.federation.connection import MeshConnection
from backend.federation.counters import FederationCounters
from backend.federation.errors import FederationMessageError
from backend.federation.gossip import (
    HeartbeatVerdict,
    LinkChanged,
    LinkThresholds,
    change_on_heartbeat,
    echo_subject,
    judge_heartbeat,
    status_on_heartbeat,
)
from backend.federation.links import link_id
from backend.federation.messages import (
    HealthPayload,
    MeshMessage,
    decode_health,
    encode_message,
    health_subject,
)
from backend.federation.store import FederationStore
from backend.store import utcnow

log = logging.getLogger(__name__)

#: The longest an echo probe waits for its answer (a silent link: no latency, no harm).
ECHO_TIMEOUT_S = 5.0


class Heartbeats:
    """Sends and receives the site's health gossip and keeps the site/link rows."""

    def __init__(
        self,
        *,
        site_id: str,
        site_name: str,
        interval_s: float,
        thresholds: LinkThresholds,
        connection: MeshConnection,
        store: FederationStore,
        counters: FederationCounters,
        send: Callable[[MeshMessage], object],
        learn_peer: Callable[[str, str], None],
    ) -> None:
        """``send`` queues an outgoing mesh message (the link audit); ``learn_peer(site,
        domain)`` is told of every peer that announces a JetStream domain."""
        self.site_id = site_id
        self.site_name = site_name or site_id
        self.interval_s = interval_s
        self.thresholds = thresholds
        self._connection = connection
        self._store = store
        self._counters = counters
        self._send = send
        self._learn_peer = learn_peer
        self._started_monotonic = time.monotonic()
        #: Cuts the wait short so two sites find each other in milliseconds, not after
        #: a 15 s heartbeat interval.
        self._beat_now = asyncio.Event()
        #: The loop and the listener update the same rows: one writer at a time.
        self._rows_lock = asyncio.Lock()
        #: Last echo round trip (ms) per peer site; peers are probed once they were heard.
        self.echo_rtt_ms: dict[str, float] = {}
        self._peers: set[str] = set()
        self._echoes: set[asyncio.Task[None]] = set()

    def beat_now(self) -> None:
        """Send the next heartbeat without waiting for the interval."""
        self._beat_now.set()

    def payload(self, now: datetime) -> HealthPayload:
        """This site's heartbeat at ``now``."""
        return HealthPayload(
            site_id=self.site_id,
            site_name=self.site_name,
            sent_at=now,
            jetstream_domain=self._connection.domain,
            nats_connected=self._connection.connected,
            messages_published=self._counters.published,
            alerts_received=self._counters.alerts_received,
            uptime_s=round(time.monotonic() - self._started_monotonic, 3),
        )

    async def run(self) -> None:
        """Beat forever: publish, refresh the local row, demote silent links, wait."""
        while True:
            now = utcnow()
            payload = self.payload(now)
            await self._connection.publish_core(
                health_subject(self.site_id), encode_message(payload)
            )
            try:
                async with self._rows_lock:
                    await self._store.refresh_local_site(payload, self._connection.domain, now)
                    changes = await self._store.demote_silent_links(now, self.thresholds)
            except SQLAlchemyError as error:
                log.warning("federation: site/link rows not refreshed: %s", error)
            else:
                for change in changes:
                    self._announce(change)
            self._probe_peers()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s):
                    await self._beat_now.wait()
            self._beat_now.clear()

    async def on_health(self, msg: Msg) -> None:
        """NATS callback for ``aurora.federation.health.*``."""
        try:
            payload = decode_health(msg.data)
        except FederationMessageError as error:
            self._counters.unreadable += 1
            log.warning("%s", error)
            return
        verdict = judge_heartbeat(self.site_id, msg.subject, payload)
        if verdict is HeartbeatVerdict.OWN:
            return
        if verdict is HeartbeatVerdict.MISROUTED:
            self._counters.unreadable += 1
            log.warning("heartbeat of %r arrived on %r: ignored", payload.site_id, msg.subject)
            return
        self._counters.heartbeats_received += 1
        received = utcnow()
        self._peers.add(payload.site_id)
        name = link_id(self.site_id, payload.site_id)
        status = status_on_heartbeat(self.thresholds)
        try:
            async with self._rows_lock:
                previous = await self._store.record_heartbeat(
                    name, payload, status, received, self.echo_rtt_ms.get(payload.site_id)
                )
        except SQLAlchemyError as error:
            log.warning("federation: heartbeat of %s not recorded: %s", payload.site_id, error)
            return
        change = change_on_heartbeat(name, payload.site_id, previous, status, received)
        if change is not None:
            self._announce(change)
        if payload.jetstream_domain:
            self._learn_peer(payload.site_id, payload.jetstream_domain)

    def _probe_peers(self) -> None:
        """Start one echo probe per peer, unless the last one to it is still out."""
        busy = {task.get_name() for task in self._echoes}
        for peer in sorted(self._peers):
            name = f"federation-echo-{peer}"
            if name in busy:
                continue
            task = asyncio.create_task(self._echo(peer), name=name)
            self._echoes.add(task)
            task.add_done_callback(self._echoes.discard)

    async def _echo(self, peer: str) -> None:
        """Time one request/reply round trip to ``peer`` and keep it as the link latency."""
        timeout_s = min(ECHO_TIMEOUT_S, max(self.interval_s, 0.5))
        began = time.monotonic()
        reply = await self._connection.request(echo_subject(peer), self.site_id.encode(), timeout_s)
        if reply is None:
            return  # unanswered: the gossip age and the link status speak for the link
        rtt_ms = (time.monotonic() - began) * 1000.0
        self.echo_rtt_ms[peer] = rtt_ms
        try:
            async with self._rows_lock:
                await self._store.record_echo(link_id(self.site_id, peer), rtt_ms)
        except SQLAlchemyError as error:
            log.warning("federation: echo latency to %s not recorded: %s", peer, error)

    async def aclose(self) -> None:
        """Cancel echo probes still waiting for an answer."""
        for task in list(self._echoes):
            task.cancel()
        await asyncio.gather(*self._echoes, return_exceptions=True)

    def _announce(self, change: LinkChanged) -> None:
        log.info("federation: %s is now %s", change.link_id, change.status.value)
        self._send(change.audit(self.site_id))
