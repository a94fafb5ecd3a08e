"""Stream and consumer definitions of the mesh (pure; the servers are in integration)."""

from __future__ import annotations

from nats.js.api import AckPolicy, DeliverPolicy, StorageType

from backend.federation import jetstream, publisher
from backend.federation.jetstream import (
    consumer_name,
    origin_stream_config,
    peer_consumer_config,
    peer_stream_config,
    peer_stream_name,
)


def test_origin_stream_captures_the_federation_subjects_on_disk() -> None:
    config = origin_stream_config()
    assert config.name == "AURORA"
    assert config.subjects == ["aurora.alerts.federation.>", "aurora.ioc_sharing", "aurora.audit"]
    assert config.storage is StorageType.FILE
    # health gossip is not kept: a stale heartbeat is noise
    assert not any("health" in subject for subject in config.subjects)


def test_peer_stream_sources_the_peer_aurora_through_its_domain() -> None:
    config = peer_stream_config("b", "b")
    assert config.name == peer_stream_name("b") == "AURORA_FROM_b"
    assert config.subjects == []  # only the source feeds it: no plain-interest duplicates
    assert config.sources is not None and len(config.sources) == 1
    source = config.sources[0]
    assert source.name == "AURORA"
    assert source.external is not None and source.external.api == "$JS.b.API"


def test_consumer_is_durable_from_the_start_with_explicit_acks() -> None:
    config = peer_consumer_config("a")
    assert config.durable_name == config.name == consumer_name("a") == "federation-a"
    assert config.deliver_policy is DeliverPolicy.ALL
    assert config.ack_policy is AckPolicy.EXPLICIT
    assert config.max_deliver == -1  # a database outage must not exhaust redeliveries


def test_restart_reoffer_stays_inside_the_duplicate_window() -> None:
    # Re-offered alerts the stream already holds must be dropped by Nats-Msg-Id.
    assert publisher.REPUBLISH_WINDOW_S < jetstream.DUPLICATE_WINDOW_S
