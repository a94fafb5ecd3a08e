"""What the publisher queues for the mesh and when a publish counts as stored (no servers)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from nats.js.api import PubAck

from backend.contract import Severity
from backend.federation.counters import FederationCounters
from backend.federation.messages import FederatedAlert, IocShare
from backend.federation.publisher import Publisher


@dataclass
class Record:
    severity: str
    iocs: list[Any] = field(default_factory=list)
    origin_site: str | None = "a"
    id: str = "0b9f3c1e-1111-4000-8000-000000000001"
    type: str = "c2_beacon"
    title: str = "test"
    description: str = ""
    device_id: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class FakeJetStream:
    """Answers publishes with the acks given, in order (domain of the answering stream)."""

    def __init__(self, domains: list[str]) -> None:
        self.domains = domains
        self.published: list[tuple[str, dict[str, str]]] = []

    async def publish(self, subject: str, data: bytes, **kwargs: Any) -> PubAck:
        self.published.append((subject, kwargs["headers"]))
        return PubAck(stream="AURORA", seq=len(self.published), domain=self.domains.pop(0))


class FakeConnection:
    """The part of MeshConnection the publisher reads: readiness, JetStream, our domain."""

    def __init__(self, js: FakeJetStream | None = None, domain: str | None = "a") -> None:
        self.ready = asyncio.Event()
        self.js = js
        self.domain = domain


def _publisher(connection: FakeConnection | None = None, queue_limit: int = 100) -> Publisher:
    return Publisher(
        site_id="a",
        min_severity=Severity.HIGH,  # the settings default
        connection=connection or FakeConnection(),  # type: ignore[arg-type]
        store=None,  # type: ignore[arg-type]  # only republish_recent reads it
        counters=FederationCounters(),
        queue_limit=queue_limit,
    )


@pytest.mark.parametrize(
    ("record", "kinds"),
    [
        (Record("critical"), [FederatedAlert]),
        (Record("high", iocs=[{"value": "203.0.113.9"}]), [FederatedAlert, IocShare]),
        # below the gate the alert stays local; its indicators are still shared
        (Record("low", iocs=[{"value": "203.0.113.9"}]), [IocShare]),
        (Record("medium"), []),
        (Record("low", iocs=[{"value": ""}]), []),  # nothing left to share
        # a peer's alert is never sent back out
        (Record("critical", iocs=["203.0.113.9"], origin_site="b"), []),
    ],
)
async def test_observer_gates_by_severity_and_origin(record: Record, kinds: list[type]) -> None:
    publisher = _publisher()
    await publisher.on_local_alert(record)
    queued = publisher.drain_nowait()
    assert [type(item) for item in queued] == kinds
    for item in queued:
        assert item.origin_site == "a"
    if kinds and kinds[0] is FederatedAlert:
        assert queued[0].subject == f"aurora.alerts.federation.{record.severity}"
        assert queued[0].msg_id == f"a:{record.id}"


async def test_a_full_queue_refuses_and_counts() -> None:
    publisher = _publisher(queue_limit=1)
    await publisher.on_local_alert(Record("critical"))
    await publisher.on_local_alert(Record("critical", id="second"))
    assert publisher.depth == 1
    assert publisher._counters.dropped_queue_full == 1


async def test_an_ack_from_the_peers_stream_is_not_enough() -> None:
    # The peer's AURORA captures our subjects across the leafnode and may answer first;
    # the message must land in *our* stream, which is what the peer sources.
    fake = FakeJetStream(["b", "b", "a"])
    connection = FakeConnection(fake, domain="a")
    connection.ready.set()
    publisher = _publisher(connection)
    await publisher.on_local_alert(Record("critical"))
    (message,) = publisher.drain_nowait()
    await publisher.publish_until_stored(message)
    assert [headers["Nats-Msg-Id"] for _, headers in fake.published] == [message.msg_id] * 3
    assert publisher._counters.published == 1
    assert publisher._counters.publish_retries == 2
