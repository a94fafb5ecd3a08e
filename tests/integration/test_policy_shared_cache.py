"""The aurora_auth plugin's decision cache shared in Redis (go-auth's ``cache_type redis``,
as seed 004 configures it): two real brokers, one real redis-server, a fake policy
service that counts what it is asked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
import redis

from bench.pki import Pki
from bench.policy_probe import FakePolicyService, PolicyBroker, start_policy_broker, token_client
from bench.services.local import LOOPBACK, redis_service
from bench.services.process import Service, free_port

TOKEN = "header.payload.signature-of-svc-shared"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.ensure(tmp_path_factory.mktemp("shared-cache-pki"))


@pytest.fixture
def policy() -> Iterator[FakePolicyService]:
    with closing(FakePolicyService().start()) as service:
        service.behaviour.status = {"/mqtt/superuser": 403}
        yield service


@pytest.fixture
def shared_redis(tmp_path: Path) -> Iterator[tuple[Service, int]]:
    port = free_port()
    service = redis_service(tmp_path, "cache", port)
    service.start()
    try:
        yield service, port
    finally:
        service.stop()


def brokers(
    tmp_path: Path, pki: Pki, policy: FakePolicyService, redis_port: int
) -> list[PolicyBroker]:
    return [
        start_policy_broker(
            tmp_path / name, pki, policy.port, shared_cache=f"{LOOPBACK}:{redis_port}"
        )
        for name in ("one", "two")
    ]


def login_and_publish(broker: PolicyBroker, client_id: str) -> tuple[int, int]:
    """CONNACK and PUBACK reason codes; PUBACK 16 (no subscribers) is a success, as 0."""
    assert broker.token_port is not None
    with token_client(
        LOOPBACK,
        broker.token_port,
        broker.pki.ca_cert,
        username="svc-shared",
        password=TOKEN,
        client_id=client_id,
    ) as client:
        puback = client.publish("celine/digital-twin/events/pump/1", b"{}")
        return client.connack, 0 if puback == 16 else puback


def test_a_decision_one_broker_got_answers_the_other(
    tmp_path: Path, pki: Pki, policy: FakePolicyService, shared_redis: tuple[Service, int]
) -> None:
    one, two = brokers(tmp_path, pki, policy, shared_redis[1])
    try:
        assert login_and_publish(one, "shared-1") == (0, 0)
        asked = [request.path for request in policy.taken()]
        assert asked == ["/mqtt/user", "/mqtt/superuser", "/mqtt/acl"]
        # The other broker has nothing in memory: Redis answers, the service is not asked.
        assert login_and_publish(two, "shared-1") == (0, 0)
        assert policy.taken() == []
        # Keys are hashes with a TTL: no token in Redis, nothing kept forever.
        store = redis.Redis(port=shared_redis[1])
        keys = store.keys("*")
        assert len(keys) == 3
        assert all(key.startswith(b"aurora_auth:") and len(key) == 76 for key in keys)
        assert not any(TOKEN.encode() in key for key in keys)
        assert all(0 < store.pttl(key) <= 30_000 for key in keys)
        # A deny is shared too.
        policy.behaviour.status = {"/mqtt/superuser": 403, "/mqtt/acl": 403}
        assert login_and_publish(one, "shared-2")[1] == 135
        policy.taken()
        assert login_and_publish(two, "shared-2")[1] == 135
        assert policy.taken() == []
    finally:
        one.stop()
        two.stop()


def test_without_redis_the_brokers_ask_the_service_and_say_so(
    tmp_path: Path, pki: Pki, policy: FakePolicyService, shared_redis: tuple[Service, int]
) -> None:
    service, port = shared_redis
    one, two = brokers(tmp_path, pki, policy, port)
    try:
        service.stop()
        began = time.monotonic()
        assert login_and_publish(one, "down-1") == (0, 0)
        assert login_and_publish(two, "down-1") == (0, 0)
        # Each broker asked the service itself, promptly.
        assert [r.path for r in policy.taken()].count("/mqtt/user") == 2
        assert time.monotonic() - began < 10
        for broker in (one, two):
            assert "shared cache at 127.0.0.1:" in broker.log_text()
            assert "unavailable (cannot connect" in broker.log_text()
        service.start()
        time.sleep(1.2)  # the plugin leaves Redis alone for 1 s after a failure
        assert login_and_publish(one, "back-1") == (0, 0)
        assert "is back" in one.log_text()
        policy.taken()
        assert login_and_publish(two, "back-1") == (0, 0)
        assert policy.taken() == []
    finally:
        one.stop()
        two.stop()
