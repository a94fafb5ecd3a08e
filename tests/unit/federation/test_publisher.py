"""What the alert observer queues for the mesh (no servers: nothing is started)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from backend.federation.messages import FederatedAlert, IocShare
from backend.federation.service import FederationService
from backend.settings import Settings


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


class Sink:
    def add_observer(self, callback: Any) -> None: ...

    async def ingest_remote(self, **kwargs: Any) -> None: ...


@pytest.fixture
def service() -> FederationService:
    settings = Settings(
        site_id="a", nats_url="nats://127.0.0.1:1", federation_enabled=True
    )  # federate_min_severity defaults to high
    return FederationService(settings, Sink(), None)  # type: ignore[arg-type]


def _queued(service: FederationService) -> list[Any]:
    items = []
    while not service._queue.empty():
        items.append(service._queue.get_nowait())
    return items


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
async def test_observer_gates_by_severity_and_origin(
    service: FederationService, record: Record, kinds: list[type]
) -> None:
    await service._on_local_alert(record)
    queued = _queued(service)
    assert [type(item) for item in queued] == kinds
    for item in queued:
        assert item.origin_site == "a"
    if kinds and kinds[0] is FederatedAlert:
        assert queued[0].subject == f"aurora.alerts.federation.{record.severity}"
        assert queued[0].msg_id == f"a:{record.id}"


async def test_a_full_queue_refuses_and_counts(
    service: FederationService, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    monkeypatch.setattr(service, "_queue", asyncio.Queue(maxsize=1))
    await service._on_local_alert(Record("critical"))
    await service._on_local_alert(Record("critical", id="second"))
    assert service.health()["queue_depth"] == 1
    assert service.counters.dropped_queue_full == 1


class FakeJetStream:
    """Answers publishes with the acks given, in order (domain of the answering stream)."""

    def __init__(self, domains: list[str]) -> None:
        self.domains = domains
        self.published: list[tuple[str, dict[str, str]]] = []

    async def publish(self, subject: str, data: bytes, **kwargs: Any) -> Any:
        from nats.js.api import PubAck

        self.published.append((subject, kwargs["headers"]))
        return PubAck(stream="AURORA", seq=len(self.published), domain=self.domains.pop(0))


async def test_an_ack_from_the_peers_stream_is_not_enough(service: FederationService) -> None:
    # The peer's AURORA captures our subjects across the leafnode and may answer first;
    # the message must land in *our* stream, which is what the peer sources.
    fake = FakeJetStream(["b", "b", "a"])
    service._js = fake  # type: ignore[assignment]
    service._domain = "a"
    service._ready.set()
    await service._on_local_alert(Record("critical"))
    (message,) = _queued(service)
    await service._publish_until_stored(message)
    assert [headers["Nats-Msg-Id"] for _, headers in fake.published] == [message.msg_id] * 3
    assert service.counters.published == 1
    assert service.counters.publish_retries == 2
