"""Outgoing mesh traffic: queue what the site raises, publish each message until stored.

The alert observer only queues (the local alert write never waits on the mesh); one
publisher task drains the queue in order into this site's ``AURORA`` stream, retrying a
message until *our* stream acknowledged it. After a restart, recent local alerts are
offered again: what the stream already holds is dropped by its duplicate window
(``Nats-Msg-Id``), what a crash left in the in-memory queue goes out now.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError

from backend.contract import Severity
from backend.federation.connection import NATS_ERRORS, RETRY, MeshConnection
from backend.federation.counters import FederationCounters
from backend.federation.messages import (
    AlertLike,
    IocShare,
    MeshMessage,
    build_federated_alert,
    encode_message,
    should_federate,
)
from backend.federation.store import FederationStore
from backend.store import utcnow

log = logging.getLogger(__name__)

#: Outgoing messages held while NATS is unreachable; beyond this the oldest are refused
#: (logged and counted) rather than growing without bound.
QUEUE_LIMIT = 10_000
#: After a restart, local alerts this recent are published again (see the module doc);
#: shorter than jetstream.DUPLICATE_WINDOW_S so the stream drops what it holds.
REPUBLISH_WINDOW_S = 3000.0
REPUBLISH_LIMIT = 2000
#: Immediate re-publishes when the peer's stream acked first (see publish_until_stored).
FOREIGN_ACK_RETRIES = 5
PUBLISH_TIMEOUT_S = 2.0


class Publisher:
    """The site's outgoing queue and the task that drains it into JetStream."""

    def __init__(
        self,
        *,
        site_id: str,
        min_severity: Severity,
        connection: MeshConnection,
        store: FederationStore,
        counters: FederationCounters,
        queue_limit: int = QUEUE_LIMIT,
    ) -> None:
        self.site_id = site_id
        self.min_severity = min_severity
        self._connection = connection
        self._store = store
        self._counters = counters
        self._queue: asyncio.Queue[MeshMessage] = asyncio.Queue(maxsize=queue_limit)

    @property
    def depth(self) -> int:
        """Messages waiting to be published."""
        return self._queue.qsize()

    def drain_nowait(self) -> list[MeshMessage]:
        """Take every queued message out (tests and shutdown reports)."""
        items: list[MeshMessage] = []
        while not self._queue.empty():
            items.append(self._queue.get_nowait())
        return items

    async def on_local_alert(self, record: AlertLike) -> None:
        """Alert observer: queue a federated copy (and its IOCs); never blocks."""
        origin = getattr(record, "origin_site", None)
        if origin not in (None, self.site_id):
            return  # a peer's alert is never re-federated
        if should_federate(record.severity, self.min_severity):
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
            self._counters.dropped_queue_full += 1
            log.error(
                "federation queue full (%d messages, NATS unreachable?): %s not sent",
                self._queue.maxsize,
                message.msg_id,
            )
            return False
        self._queue.put_nowait(message)
        return True

    async def run(self) -> None:
        """Drain the queue in order, forever."""
        while True:
            message = await self._queue.get()
            await self.publish_until_stored(message)

    async def publish_until_stored(self, message: MeshMessage) -> None:
        """Publish ``message`` until this site's own stream has stored it."""
        data = encode_message(message)
        delays = RETRY.delays()
        foreign_acks = 0
        while True:
            await self._connection.ready.wait()
            try:
                ack = await self._connection.js.publish(
                    message.subject,
                    data,
                    timeout=PUBLISH_TIMEOUT_S,
                    headers={"Nats-Msg-Id": message.msg_id},
                )
            except NATS_ERRORS as error:
                self._counters.publish_retries += 1
                log.warning("federation publish of %s failed: %r (retrying)", message.msg_id, error)
                await asyncio.sleep(next(delays))
                continue
            domain = self._connection.domain
            if domain is not None and ack.domain not in (None, domain):
                # The peer's AURORA captures our subjects across the leafnode and answers
                # first about one time in three; only our own stream is what the peer
                # sources, so publish again (the Nats-Msg-Id makes the copy a no-op
                # wherever it was stored). Immediately at first, backing off if our stream
                # keeps not answering (JetStream unavailable here).
                self._counters.publish_retries += 1
                foreign_acks += 1
                if foreign_acks > FOREIGN_ACK_RETRIES:
                    if foreign_acks == FOREIGN_ACK_RETRIES + 1:
                        log.warning(
                            "federation publish of %s: only domain %r answers, not ours (%r)",
                            message.msg_id,
                            ack.domain,
                            domain,
                        )
                    await asyncio.sleep(next(delays))
                continue
            self._counters.published += 1
            return

    async def republish_recent(self) -> None:
        """Queue recent local federable alerts again (see REPUBLISH_WINDOW_S)."""
        since = utcnow() - timedelta(seconds=REPUBLISH_WINDOW_S)
        try:
            rows = await self._store.recent_local_alerts(
                since, Severity(self.min_severity), REPUBLISH_LIMIT
            )
        except SQLAlchemyError as error:
            log.warning("federation: cannot read recent alerts to republish: %s", error)
            return
        for row in rows:
            # build_federated_alert takes SQLite's naive created_at as UTC.
            self.enqueue(build_federated_alert(row, self.site_id))
        if rows:
            log.info("federation: re-offered %d recent local alerts to the mesh", len(rows))
