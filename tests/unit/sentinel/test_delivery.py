"""Delivery to both streams with a fake JetStream: ids, the QoS header, retries, give-up."""

from __future__ import annotations

from dataclasses import dataclass, field

import nats.errors
import pytest

from backend.sentinel.delivery import (
    MQTT_QOS_HEADER,
    QOS1_STREAM,
    Delivery,
    qos1_stream_config,
    qos1_subject,
)
from backend.sentinel.shards import shard_of

SHARDS = 4


@dataclass
class FakeJetStream:
    fail_subjects: dict[str, int] = field(default_factory=dict)
    published: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> None:
        if self.fail_subjects.get(subject, 0) > 0:
            self.fail_subjects[subject] -= 1
            raise nats.errors.NoRespondersError  # a stream leader election in progress
        self.published.append((subject, payload, headers))


def _feeds(count: int) -> list[FakeJetStream]:
    return [FakeJetStream() for _ in range(count)]


async def test_an_alert_goes_to_the_record_and_the_qos1_feed_with_one_id() -> None:
    js, feeds = FakeJetStream(), _feeds(SHARDS)
    delivery = Delivery(js, feeds)  # type: ignore[arg-type]
    assert await delivery.deliver("c1", b"x", "c1-abc")
    # The record in the record account, the QoS 1 copy in c1's shard account only.
    assert [subject for subject, _p, _h in js.published] == ["clients.c1.alerts"]
    mine = feeds[shard_of("c1", SHARDS)]
    assert [subject for subject, _p, _h in mine.published] == ["$MQTT.msgs.clients.c1.alerts"]
    assert sum(len(feed.published) for feed in feeds) == 1
    for _subject, payload, headers in js.published + mine.published:
        assert payload == b"x"
        # The same id in both streams; QoS 1 in the header, so a QoS 1 subscription skips
        # the record's core copy and is fed by its consumer only (no duplicate).
        assert headers == {"Nats-Msg-Id": "c1-abc", MQTT_QOS_HEADER: "1"}


async def test_a_failing_feed_is_retried_without_doubling_the_record() -> None:
    js, feeds = FakeJetStream(), _feeds(SHARDS)
    feed = feeds[shard_of("c1", SHARDS)]
    feed.fail_subjects[qos1_subject("clients.c1.alerts")] = 3
    retries: list[int] = []
    delivery = Delivery(js, feeds, on_retry=lambda: retries.append(1))  # type: ignore[arg-type]
    assert await delivery.deliver("c1", b"x", "c1-abc")
    assert len(js.published) == len(feed.published) == 1
    assert len(retries) == 3


async def test_delivery_gives_up_within_its_budget_and_says_so() -> None:
    js, feeds = FakeJetStream(fail_subjects={"clients.c1.alerts": 10_000}), _feeds(SHARDS)
    delivery = Delivery(js, feeds, retry_budget_s=0.2)  # type: ignore[arg-type]
    assert not await delivery.deliver("c1", b"x", "c1-abc")
    assert js.published == []
    published = [subject for feed in feeds for subject, _p, _h in feed.published]
    assert published == ["$MQTT.msgs.clients.c1.alerts"]


async def test_each_clients_qos1_copy_goes_to_its_own_shard() -> None:
    js, feeds = FakeJetStream(), _feeds(SHARDS)
    delivery = Delivery(js, feeds)  # type: ignore[arg-type]
    clients = [f"c{n}" for n in range(64)]
    for client in clients:
        assert await delivery.deliver(client, b"x", f"{client}-id")
    for index, feed in enumerate(feeds):
        want = sorted(
            qos1_subject(f"clients.{c}.alerts") for c in clients if shard_of(c, SHARDS) == index
        )
        assert sorted(subject for subject, _p, _h in feed.published) == want
    assert len(js.published) == len(clients)
    with pytest.raises(ValueError, match="at least one shard"):
        Delivery(js, [])  # type: ignore[arg-type]


def test_the_qos1_stream_keeps_the_servers_shape_with_the_seeds_retention() -> None:
    config = qos1_stream_config()
    assert config.name == QOS1_STREAM
    assert config.subjects == ["$MQTT.msgs.>"]
    assert config.max_age == 72 * 3600
    assert config.num_replicas == 3
    assert config.duplicate_window == 120
