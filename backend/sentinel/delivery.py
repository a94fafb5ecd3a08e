"""Delivery of an inspected alert: the 72 h record and the MQTT QoS 1 feed, both exactly once.

Every delivered alert is JetStream-published twice, concurrently, with the same
``Nats-Msg-Id`` and retried until stored (a stream-leader election, 6-8 s here, only delays):

1. ``clients.<id>.alerts`` -> stream ``MQTT_ALERTS`` (seed: 72 h, file, R3, discard old) in
   the record account ``SENTINEL``: the record. Its core copy reaches NATS subscribers and
   MQTT QoS 0 subscriptions: the record account exports ``clients.*.alerts`` as a stream
   and every client (shard) account imports it.
2. ``$MQTT.msgs.clients.<id>.alerts`` -> stream ``$MQTT_msgs`` of the client's *shard
   account* (:mod:`backend.sentinel.shards`), published over the worker's connection in
   that account: the stream nats-server's MQTT layer keeps QoS 1 messages in. Clients are
   spread over shard accounts because the server checks every consumer of ``$MQTT_msgs``
   on each store and ack, so one stream for every subscriber made an alert's cost grow
   with their number. Every QoS 1 subscription of an MQTT session is a
   durable JetStream consumer on it (filter ``$MQTT.msgs.<subject>``, deliver-new, explicit
   ack = PUBACK); for a persistent session (``clean_session=false``) the consumer outlives
   the connection, so what arrives while the subscriber is away is its backlog, replayed in
   order, with packet ids and redelivery, when it reconnects (to any node: the consumer is
   replicated like the stream, ``mqtt.stream_replicas 3``).

Both copies carry ``Nmqtt-Pub: 1``, the header the server's MQTT layer reads to know a
message was published at QoS 1. A QoS 1 subscription then skips the core copy of (1) in its
QoS 0 callback and takes the message from its consumer only, so an online QoS 1 subscriber
gets it once (nats-server ``mqttDeliverMsgCbQoS0``: "If the message was published with a
QoS>0 (in the header) and the sub has the QoS>0 then the message will be delivered by
mqttDeliverMsgCbQoS12"; the double delivery without the header is nats-server issue #4291).
A QoS 0 subscription still takes the core copy, as MQTT wants (min of the two QoS).

Why not the alternative, publishing as an MQTT QoS 1 client: NATS MQTT acknowledges a QoS 1
publish before any stream stored it, and its store into ``$MQTT_msgs`` has no
``Nats-Msg-Id``, so a retry after a node loss doubles and a leader election loses (measured
for the ingress, see :mod:`backend.sentinel.worker`); ``MQTT_ALERTS`` would also capture that
publish's core copy without an id. The JetStream publishes keep both streams exactly once.

``$MQTT_msgs`` has interest retention: a message is kept while some QoS 1 consumer has not
acknowledged it. :func:`qos1_stream_config` adds the seed's 72 h as its max age (and the
duplicate window the ids need), so a session that never returns holds its backlog no longer
than ``MQTT_ALERTS`` holds the record. The worker creates the stream in every shard account
where no MQTT client has yet made the server create it, with the server's own settings plus
those two. (The record account needs none: no client subscribes there.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from backend.sentinel.naming import STREAM_MAX_AGE_S, STREAM_REPLICAS, alerts_subject
from backend.sentinel.shards import shard_of

log = logging.getLogger("backend.sentinel.delivery")

#: nats-server's MQTT message stream and its subject prefix (server/mqtt.go).
QOS1_STREAM = "$MQTT_msgs"
QOS1_PREFIX = "$MQTT.msgs."
#: The header by which nats-server's MQTT layer knows the QoS a message was published at.
MQTT_QOS_HEADER = "Nmqtt-Pub"
#: Both streams' duplicate window: a retried publish within it is stored once.
DUPLICATE_WINDOW_S = 120.0
#: Retry pause bounds while a stream has no leader (re-election took 6-8 s here).
RETRY_MIN_S = 0.05
RETRY_MAX_S = 1.0


def qos1_subject(subject: str) -> str:
    """``$MQTT.msgs.<subject>``: where the server's QoS 1 consumers of ``subject`` read."""
    return QOS1_PREFIX + subject


def delivery_headers(msg_id: str) -> dict[str, str]:
    """Headers of both publishes: the exactly-once id and "published at QoS 1"."""
    return {"Nats-Msg-Id": msg_id, MQTT_QOS_HEADER: "1"}


def qos1_stream_config(replicas: int = STREAM_REPLICAS) -> StreamConfig:
    """``$MQTT_msgs`` as the server makes it, plus the seed's 72 h and a duplicate window."""
    return StreamConfig(
        name=QOS1_STREAM,
        subjects=[QOS1_PREFIX + ">"],
        retention=RetentionPolicy.INTEREST,
        storage=StorageType.FILE,
        num_replicas=replicas,
        max_age=float(STREAM_MAX_AGE_S),
        duplicate_window=DUPLICATE_WINDOW_S,
    )


async def ensure_qos1_stream(js: JetStreamContext) -> None:
    """Create ``$MQTT_msgs`` if absent, else set its max age and duplicate window only."""
    wanted = qos1_stream_config()
    try:
        info = await js.stream_info(QOS1_STREAM)
    except NotFoundError:
        await js.add_stream(wanted)
        return
    config = info.config
    if config.max_age != wanted.max_age or config.duplicate_window != wanted.duplicate_window:
        config.max_age = wanted.max_age
        config.duplicate_window = wanted.duplicate_window
        await js.update_stream(config)


class Delivery:
    """Publishes one alert to both streams, each retried within ``retry_budget_s``.

    ``record`` is a JetStream context in the record account; ``feeds[k]`` one in shard
    account ``k`` (as many as the layout has shards, in shard order).
    """

    def __init__(
        self,
        record: JetStreamContext,
        feeds: Sequence[JetStreamContext],
        *,
        retry_budget_s: float = 60.0,
        on_retry: Callable[[], None] | None = None,
    ) -> None:
        if not feeds:
            raise ValueError("a delivery needs the QoS 1 feed of at least one shard account")
        self._js = record
        self._feeds = tuple(feeds)
        self._retry_budget_s = retry_budget_s
        self._on_retry = on_retry

    def feed_of(self, client_id: str) -> JetStreamContext:
        """The JetStream context of ``client_id``'s shard account."""
        return self._feeds[shard_of(client_id, len(self._feeds))]

    async def deliver(self, client_id: str, payload: bytes, msg_id: str) -> bool:
        """Store the alert in both streams; False when either gave up (logged)."""
        subject = alerts_subject(client_id)
        headers = delivery_headers(msg_id)
        record, feed = await asyncio.gather(
            self.store(subject, payload, headers),
            self.store(qos1_subject(subject), payload, headers, self.feed_of(client_id)),
        )
        return record and feed

    async def store(
        self,
        subject: str,
        payload: bytes,
        headers: dict[str, str],
        js: JetStreamContext | None = None,
    ) -> bool:
        """Store one message in whichever stream of ``js``'s account (the record's by
        default) captures ``subject``, retried within the budget; False when it gave up
        (logged)."""
        js = self._js if js is None else js
        deadline = time.monotonic() + self._retry_budget_s
        pause = RETRY_MIN_S
        while True:
            try:
                await js.publish(subject, payload, headers=headers)
                return True
            except NatsError as error:
                # Timeouts, no responders, "no response from stream", 503 while a leader is
                # elected: all transient for a replicated stream, so retry within the budget.
                if time.monotonic() + pause > deadline:
                    log.warning(
                        "publish of %s to %s gave up: %s", headers["Nats-Msg-Id"], subject, error
                    )
                    return False
                if self._on_retry is not None:
                    self._on_retry()
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_MAX_S)
