"""JetStream plumbing of the mesh: stream and consumer definitions, idempotent setup.

Why this shape (DESIGN.md, NATS 2.9.10 facts): every site runs JetStream in its own
domain, and subject interest crosses the leafnode, so a stream listening on the federation
subjects at one site also captures what the peer publishes while the link is up. Consuming
remote traffic from the local ``AURORA`` would therefore see only what arrived while
connected. Instead each site *sources* the peer's ``AURORA`` through the peer's JetStream
API (``$JS.<peer domain>.API``) into ``AURORA_FROM_<peer>``: the source is a consumer the
server keeps on the peer's stream, it resumes from its last sequence after a partition, and
it delivers in order. The site's durable pull consumer reads *only* that stream and acks
after the database write; whatever else arrives twice (the peer's stream also captured our
own publishes: echoes) is dropped by origin and dedup key in the service.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    ExternalStream,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamSource,
)
from nats.js.errors import APIError, BadRequestError, NotFoundError

from backend.federation.errors import JetStreamSetupError
from backend.federation.messages import STREAM_SUBJECTS

log = logging.getLogger(__name__)

ORIGIN_STREAM = "AURORA"
#: Seed 000 keeps a week of federation traffic; a partition longer than that loses data.
RETENTION_S = 7 * 24 * 3600.0
MAX_MSGS = 100_000
#: A publish retried within this window (same Nats-Msg-Id) is dropped by the stream; it
#: covers the service's start-up re-offer of recent alerts (service.REPUBLISH_WINDOW_S).
DUPLICATE_WINDOW_S = 3600.0
#: Redelivery when a message was handed out but never acked: the backend died (or was
#: closed) between fetch and ack. Short, so a restarted backend catches up in seconds;
#: a slow database write that outlasts it only causes a redelivery, which the dedup key
#: makes harmless.
ACK_WAIT_S = 5.0
STREAM_NAME_ERROR_IN_USE = 10058


def peer_stream_name(peer_site: str) -> str:
    """``AURORA_FROM_<peer>``: the local copy of a peer's AURORA stream."""
    return f"{ORIGIN_STREAM}_FROM_{peer_site}"


def consumer_name(local_site: str) -> str:
    """Durable name of this site's consumer on a peer stream (survives restarts)."""
    return f"federation-{local_site}"


def peer_api_prefix(peer_domain: str) -> str:
    """JetStream API prefix of a peer's domain, reachable across the leafnode."""
    return f"$JS.{peer_domain}.API"


def origin_stream_config() -> StreamConfig:
    """The per-site stream ``AURORA`` capturing the federation subjects."""
    return StreamConfig(
        name=ORIGIN_STREAM,
        description="AuroraSOC federation traffic published at this site (seed 000)",
        subjects=list(STREAM_SUBJECTS),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_msgs=MAX_MSGS,
        max_age=RETENTION_S,
        duplicate_window=DUPLICATE_WINDOW_S,
    )


def peer_stream_config(peer_site: str, peer_domain: str) -> StreamConfig:
    """``AURORA_FROM_<peer>``: no subjects of its own, sources the peer's AURORA.

    It keeps the origin stream's limits (a copy must hold as long as what it copies).
    """
    return replace(
        origin_stream_config(),
        name=peer_stream_name(peer_site),
        description=f"AURORA of site {peer_site}, sourced across the leafnode",
        subjects=[],
        sources=[
            StreamSource(
                name=ORIGIN_STREAM, external=ExternalStream(api=peer_api_prefix(peer_domain))
            )
        ],
    )


def peer_consumer_config(local_site: str) -> ConsumerConfig:
    """Durable pull consumer: everything from the start, explicit ack after persistence."""
    name = consumer_name(local_site)
    return ConsumerConfig(
        name=name,
        durable_name=name,
        description="persists peer alerts, acks after the database write",
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ACK_WAIT_S,
        max_deliver=-1,
        max_ack_pending=1000,
    )


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Create ``config`` or bring an existing stream of that name to it (idempotent).

    A restarted backend finds its streams in place; ``add_stream`` with an identical config
    succeeds, one the server filled in differently (e.g. a source's deliver prefix) is
    updated instead.
    """
    assert config.name is not None
    try:
        await js.add_stream(config)
        return
    except BadRequestError as error:
        if error.err_code != STREAM_NAME_ERROR_IN_USE:
            raise JetStreamSetupError(f"stream {config.name}", str(error)) from None
    try:
        await js.update_stream(config)
    except BadRequestError as error:
        raise JetStreamSetupError(f"stream {config.name}", str(error)) from None


async def ensure_consumer(js: JetStreamContext, stream: str, config: ConsumerConfig) -> None:
    """Create the durable consumer, or bring an existing one to ``config`` (idempotent).

    The server updates the editable fields (ack wait, ...) in place and keeps the
    consumer's position; a change it refuses (e.g. the deliver policy) leaves the existing
    consumer as it is, because its position is what "nothing lost" rests on.
    """
    assert config.durable_name is not None
    try:
        await js.add_consumer(stream, config)
        return
    except APIError as error:
        refused = error
    try:
        await js.consumer_info(stream, config.durable_name)
    except NotFoundError:
        raise JetStreamSetupError(
            f"consumer {config.durable_name} on {stream}", str(refused)
        ) from None
    log.warning(
        "federation: consumer %s on %s kept as it is (%s)", config.durable_name, stream, refused
    )


async def local_domain(js: JetStreamContext) -> str | None:
    """The JetStream domain of the server this client talks to (None: no domain set)."""
    info = await js.account_info()
    return info.domain
