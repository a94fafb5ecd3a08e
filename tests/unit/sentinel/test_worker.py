"""The ingress worker's batch path with a fake JetStream: stages decide, retries hold."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import nats.errors

from backend.sentinel.stages import Action, Finding, InboundMessage, Verdict
from backend.sentinel.worker import IngressWorker, message_id


@dataclass
class FakeMsg:
    subject: str
    data: bytes
    headers: dict[str, str] | None = None


@dataclass
class FakeJetStream:
    failures: int = 0
    published: list[tuple[str, bytes, str]] = field(default_factory=list)
    attempts: int = 0

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> None:
        self.attempts += 1
        if self.failures > 0:
            self.failures -= 1
            raise nats.errors.TimeoutError  # a leader election in progress
        self.published.append((subject, payload, headers["Nats-Msg-Id"]))


class FakeNats:
    def __init__(self, js: FakeJetStream) -> None:
        self._js = js

    def jetstream(self, **_kwargs: Any) -> FakeJetStream:
        return self._js


class QuarantineSecrets:
    name = "secrets"

    def inspect(self, message: InboundMessage) -> Verdict:
        if b"secret" in message.payload:
            return Verdict(Action.QUARANTINE, (Finding(self.name, "leak", "high"),))
        return Verdict()


def _msg(client: str, body: bytes) -> FakeMsg:
    return FakeMsg(f"sentinel.ingress.clients.{client}.alerts", body)


async def test_delivered_messages_reach_the_clients_subject_with_a_stable_id() -> None:
    js, feed = FakeJetStream(failures=3), FakeJetStream()
    worker = IngressWorker(FakeNats(js), feeds=[FakeNats(feed)])  # type: ignore[arg-type,list-item]
    await worker.handle_batch([_msg("c1", b"a"), _msg("c2", b"b")])  # type: ignore[list-item]
    # The record in the worker's own (record) account, the QoS 1 copies in the shard's.
    assert sorted(js.published) == [
        ("clients.c1.alerts", b"a", message_id("c1", b"a")),
        ("clients.c2.alerts", b"b", message_id("c2", b"b")),
    ]
    assert sorted(feed.published) == [
        ("$MQTT.msgs.clients.c1.alerts", b"a", message_id("c1", b"a")),
        ("$MQTT.msgs.clients.c2.alerts", b"b", message_id("c2", b"b")),
    ]
    # Three timeouts retried, nothing doubled (record + QoS 1 feed).
    assert js.attempts + feed.attempts == 7
    assert message_id("c1", b"a") == message_id("c1", b"a") != message_id("c2", b"a")


async def test_a_stage_quarantines_and_bad_subjects_are_dropped() -> None:
    js = FakeJetStream()
    worker = IngressWorker(
        FakeNats(js),  # type: ignore[arg-type]
        stages=[QuarantineSecrets()],
        feeds=[FakeNats(js)],  # type: ignore[list-item]
    )
    batch = [
        _msg("c1", b"fine"),
        _msg("c1", b"a secret"),
        FakeMsg("sentinel.ingress.clients.c1.x.alerts", b"odd"),
        FakeMsg("sentinel.ingress.clients.>.alerts", b"odd"),
    ]
    await worker.handle_batch(batch)  # type: ignore[arg-type]
    # The delivered alert is stored in the record and the QoS 1 feed, the quarantined one
    # only in the quarantine stream (the publishes run concurrently: order is not fixed).
    assert sorted((s, payload) for s, payload, _id in js.published) == [
        ("$MQTT.msgs.clients.c1.alerts", b"fine"),
        ("clients.c1.alerts", b"fine"),
        ("sentinel.quarantine.clients.c1.alerts", b"a secret"),
    ]


async def test_a_publish_that_never_succeeds_gives_up_within_its_budget() -> None:
    js = FakeJetStream(failures=10_000)
    worker = IngressWorker(
        FakeNats(js),  # type: ignore[arg-type]
        feeds=[FakeNats(js)],  # type: ignore[list-item]
        retry_budget_s=0.2,
    )
    await worker.handle_batch([_msg("c1", b"a")])  # type: ignore[list-item]
    assert js.published == []
    assert js.attempts >= 2
