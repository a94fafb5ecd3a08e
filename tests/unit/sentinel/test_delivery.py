"""Delivery to both streams with a fake JetStream: ids, the QoS header, retries, give-up."""

from __future__ import annotations

from dataclasses import dataclass, field

import nats.errors

from backend.sentinel.delivery import (
    MQTT_QOS_HEADER,
    QOS1_STREAM,
    Delivery,
    qos1_stream_config,
    qos1_subject,
)


@dataclass
class FakeJetStream:
    fail_subjects: dict[str, int] = field(default_factory=dict)
    published: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> None:
        if self.fail_subjects.get(subject, 0) > 0:
            self.fail_subjects[subject] -= 1
            raise nats.errors.NoRespondersError  # a stream leader election in progress
        self.published.append((subject, payload, headers))


async def test_an_alert_goes_to_the_record_and_the_qos1_feed_with_one_id() -> None:
    js = FakeJetStream()
    delivery = Delivery(js)  # type: ignore[arg-type]
    assert await delivery.deliver("clients.c1.alerts", b"x", "c1-abc")
    assert sorted(subject for subject, _p, _h in js.published) == [
        "$MQTT.msgs.clients.c1.alerts",
        "clients.c1.alerts",
    ]
    for _subject, payload, headers in js.published:
        assert payload == b"x"
        # The same id in both streams; QoS 1 in the header, so a QoS 1 subscription skips
        # the record's core copy and is fed by its consumer only (no duplicate).
        assert headers == {"Nats-Msg-Id": "c1-abc", MQTT_QOS_HEADER: "1"}


async def test_a_failing_feed_is_retried_without_doubling_the_record() -> None:
    js = FakeJetStream(fail_subjects={qos1_subject("clients.c1.alerts"): 3})
    retries: list[int] = []
    delivery = Delivery(js, on_retry=lambda: retries.append(1))  # type: ignore[arg-type]
    assert await delivery.deliver("clients.c1.alerts", b"x", "c1-abc")
    assert len(js.published) == 2
    assert len(retries) == 3


async def test_delivery_gives_up_within_its_budget_and_says_so() -> None:
    js = FakeJetStream(fail_subjects={"clients.c1.alerts": 10_000})
    delivery = Delivery(js, retry_budget_s=0.2)  # type: ignore[arg-type]
    assert not await delivery.deliver("clients.c1.alerts", b"x", "c1-abc")
    assert [subject for subject, _p, _h in js.published] == ["$MQTT.msgs.clients.c1.alerts"]


def test_the_qos1_stream_keeps_the_servers_shape_with_the_seeds_retention() -> None:
    config = qos1_stream_config()
    assert config.name == QOS1_STREAM
    assert config.subjects == ["$MQTT.msgs.>"]
    assert config.max_age == 72 * 3600
    assert config.num_replicas == 3
    assert config.duplicate_window == 120
