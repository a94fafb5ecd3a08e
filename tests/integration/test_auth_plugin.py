"""The aurora_auth Mosquitto plugin in a real broker.

A broker configured as a site's, whose token listener asks a fake policy service this
test steers: mosquitto-go-auth's protocol in json and form mode, non-2xx, the cache,
oversized tokens, a service that is down or slow. The site-level tests (a device refused
at SUBSCRIBE, the site's own router) are in ``test_policy_site.py``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, closing
from pathlib import Path

import pytest

from bench.pki import Pki
from bench.policy_probe import (
    FakePolicyService,
    PolicyBroker,
    PolicyRequest,
    TokenClient,
    start_policy_broker,
    token_client,
)
from bench.services.config import backend_identity
from bench.services.local import LOOPBACK, mqtt_accepts

NOT_AUTHORIZED = 135
REFUSED = {134, 135}  # bad user name or password / not authorized


# -- a broker in front of a fake policy service ------------------------------------------


class Broker(PolicyBroker):
    """The broker under test, with a token-client shortcut."""

    def token(
        self,
        username: str | None,
        password: str | None,
        *,
        client_id: str | None = None,
        session_expiry_s: int | None = None,
    ) -> AbstractContextManager[TokenClient]:
        assert self.token_port is not None
        return token_client(
            LOOPBACK,
            self.token_port,
            self.pki.ca_cert,
            username=username,
            password=password,
            client_id=client_id or f"tc-{uuid.uuid4().hex[:8]}",
            session_expiry_s=session_expiry_s,
        )


@pytest.fixture(scope="module")
def plugin_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.ensure(tmp_path_factory.mktemp("plugin-pki"))


@pytest.fixture
def policy() -> Iterator[FakePolicyService]:
    with closing(FakePolicyService().start()) as service:
        yield service


def start_broker(directory: Path, pki: Pki, http_port: int, **options: object) -> Broker:
    broker = start_policy_broker(directory, pki, http_port, debug_log=True, **options)
    return Broker(broker.pki, broker.mqtt_port, broker.token_port, broker.log, broker.service)


BrokerFactory = Callable[..., Broker]


@pytest.fixture
def broker_factory(tmp_path: Path, plugin_pki: Pki) -> Iterator[BrokerFactory]:
    started: list[Broker] = []

    def make(http_port: int, **options: object) -> Broker:
        broker = start_broker(tmp_path / f"b{len(started)}", plugin_pki, http_port, **options)
        started.append(broker)
        return broker

    try:
        yield make
    finally:
        for broker in started:
            broker.service.stop()


def paths(requests: list[PolicyRequest]) -> list[str]:
    return [r.path for r in requests]


@pytest.mark.parametrize("mode", ["json", "form"])
def test_speaks_go_auth_http_protocol(
    broker_factory: BrokerFactory, policy: FakePolicyService, mode: str
) -> None:
    policy.behaviour.status = {"/mqtt/superuser": 403}
    broker: Broker = broker_factory(policy.port, params_mode=mode)
    password = 'eyJ.tok"en}\\'  # quotes and backslashes must survive both encodings
    with broker.token("svc-digital-twin", password) as client:
        assert client.connack == 0
        assert client.publish("celine/twin/events", b"x") in {0, 16}
        assert client.subscribe("$share/g/celine/#") < 128
    requests = policy.taken()
    user = requests[0]
    expected_type = "application/json" if mode == "json" else "application/x-www-form-urlencoded"
    assert user.path == "/mqtt/user" and user.content_type == expected_type
    assert user.fields["username"] == "svc-digital-twin"
    assert user.fields["password"] == password
    assert user.fields["clientid"].startswith("tc-")
    # Superuser is asked before the ACL (then cached, per username); acc is 2 for publish,
    # 4 for subscribe, a JSON number in json mode and a decimal string in form mode.
    assert paths(requests[1:]) == ["/mqtt/superuser", "/mqtt/acl", "/mqtt/acl"]
    assert requests[1].fields == {"username": "svc-digital-twin"}
    publish, subscribe = requests[2].fields, requests[3].fields
    assert publish["topic"] == "celine/twin/events"
    assert subscribe["topic"] == "$share/g/celine/#"
    if mode == "json":
        assert (publish["acc"], subscribe["acc"]) == (2, 4)
    else:
        assert (publish["acc"], subscribe["acc"]) == ("2", "4")


def test_superuser_skips_the_acl_question(
    broker_factory: BrokerFactory, policy: FakePolicyService
) -> None:
    broker: Broker = broker_factory(policy.port)
    with broker.token("admin", "t") as client:
        assert client.publish("anything/at/all", b"x") in {0, 16}
    assert paths(policy.taken()) == ["/mqtt/user", "/mqtt/superuser"]


@pytest.mark.parametrize("status", [401, 403, 302, 500])
def test_any_non_2xx_denies(
    broker_factory: BrokerFactory, policy: FakePolicyService, status: int
) -> None:
    broker: Broker = broker_factory(policy.port)
    policy.behaviour.status = {"/mqtt/user": status}
    with broker.token("svc-x", "t") as client:
        assert client.connack in REFUSED
    policy.behaviour.status = {"/mqtt/superuser": 403, "/mqtt/acl": status}
    with broker.token("svc-y", "t") as client:
        assert client.connack == 0
        assert client.publish("celine/a", b"x") == NOT_AUTHORIZED
        assert client.subscribe("celine/#") >= 128
    assert "refused SUBSCRIBE to 'celine/#' by the policy service" in broker.log_text()


def test_json_answer_must_say_ok_true(
    broker_factory: BrokerFactory, policy: FakePolicyService
) -> None:
    broker: Broker = broker_factory(policy.port, response_mode="json")
    policy.behaviour.body = b'{"ok": false, "error": "nope"}'
    with broker.token("svc-x", "t") as client:
        assert client.connack in REFUSED
    policy.behaviour.body = b"ok"
    with broker.token("svc-x", "t2") as client:
        assert client.connack in REFUSED
    assert "answer is not a JSON object" in broker.log_text()


@pytest.mark.parametrize("cache", [True, False])
def test_decision_cache(
    broker_factory: BrokerFactory, policy: FakePolicyService, cache: bool
) -> None:
    policy.behaviour.status = {"/mqtt/superuser": 403}
    broker: Broker = broker_factory(policy.port, cache=cache)
    with broker.token(
        "svc-x",
        "t",
    ) as client:
        for _ in range(5):
            assert client.publish("celine/a", b"x") in {0, 16}
    acl_checks = paths(policy.taken()).count("/mqtt/acl")
    assert acl_checks == (1 if cache else 5)


def test_oversized_and_missing_tokens_are_refused_unasked(
    broker_factory: BrokerFactory, policy: FakePolicyService
) -> None:
    broker: Broker = broker_factory(policy.port, max_password_bytes=4096)
    with broker.token("svc-x", "A" * 20_000) as client:
        assert client.connack in REFUSED
    with broker.token("svc-x", None) as client:
        assert client.connack in REFUSED
    with broker.token(None, None) as client:
        assert client.connack in REFUSED
    assert policy.taken() == []
    log = broker.log_text()
    assert "password of 20000 bytes is over max_password_bytes 4096" in log
    # The broker is alive and answers a good token next.
    with broker.token("svc-x", "fine") as client:
        assert client.connack == 0


def test_certificate_identities_cannot_log_in_with_a_password(
    broker_factory: BrokerFactory, policy: FakePolicyService
) -> None:
    broker: Broker = broker_factory(policy.port)
    for name in (backend_identity("t"), "bench-probe"):
        with broker.token(name, "t") as client:
            assert client.connack in REFUSED
    assert policy.taken() == []
    assert "a certificate identity cannot log in with a password" in broker.log_text()


def test_service_down_fails_closed_and_cached_decisions_go_on(
    broker_factory: BrokerFactory, policy: FakePolicyService, plugin_pki: Pki
) -> None:
    policy.behaviour.status = {"/mqtt/superuser": 403}
    broker: Broker = broker_factory(policy.port)
    with broker.token("svc-early", "t") as early:
        assert early.publish("celine/a", b"x") in {0, 16}
        policy.close()
        # Uncached: refused (no answer), at CONNECT and at PUBLISH.
        with broker.token("svc-late", "t") as late:
            assert late.connack in REFUSED
        assert early.publish("celine/b", b"x") == NOT_AUTHORIZED
        # Cached: still allowed while the service is down.
        assert early.publish("celine/a", b"x") in {0, 16}
    log = broker.log_text()
    assert "gave no answer" in log and "refusing uncached checks without asking" in log
    # Certificate clients never depend on the service.
    probe = plugin_pki.service("bench-probe")
    assert mqtt_accepts(LOOPBACK, broker.mqtt_port, plugin_pki.ca_cert, probe)


def test_slow_service_costs_one_timeout_then_refuses_without_asking(
    broker_factory: BrokerFactory, policy: FakePolicyService
) -> None:
    broker: Broker = broker_factory(policy.port, timeout_ms=200, retry_after_ms=60_000)
    policy.behaviour.delay_s = 2.0
    with broker.token("svc-1", "t") as client:
        assert client.connack in REFUSED
    with broker.token("svc-2", "t") as client:
        assert client.connack in REFUSED
    # The second connect was refused without a request: one timeout, not one per check.
    assert paths(policy.taken()) == ["/mqtt/user"]
    assert "Timeout was reached" in broker.log_text() or "timed out" in broker.log_text()


@pytest.mark.parametrize("read_allowed", [True, False])
def test_offline_token_session_is_still_asked_about(
    broker_factory: BrokerFactory, policy: FakePolicyService, read_allowed: bool
) -> None:
    """Messages queued for an offline token client are checked at the policy service.

    An offline session shows no certificate; the plugin must still know it as a token
    client (and not judge it by the certificate rules, which know no "svc-away").
    """
    broker: Broker = broker_factory(policy.port)
    policy.behaviour.status = {"/mqtt/superuser": 403}
    with broker.token("svc-away", "t", client_id="away-1", session_expiry_s=300) as away:
        assert away.subscribe("celine/queued") < 128
    policy.taken()
    if not read_allowed:
        policy.behaviour.refuse = lambda path, fields: fields.get("acc") == 1
    with broker.token("svc-sender", "t") as sender:
        assert sender.publish("celine/queued", b"while you were away") in {0, 16}
    asked = [r.fields for r in policy.taken() if r.path == "/mqtt/acl"]
    read = {"username": "svc-away", "clientid": "away-1", "topic": "celine/queued", "acc": 1}
    assert read in asked
    with broker.token("svc-away", "t", client_id="away-1", session_expiry_s=300) as away:
        marker = "celine/marker"
        assert away.subscribe(marker) < 128
        policy.behaviour.refuse = None
        with broker.token("svc-sender", "t") as sender:
            assert sender.publish(marker, b"end") in {0, 16}
        deadline = time.monotonic() + 10
        while (marker, b"end") not in away.messages and time.monotonic() < deadline:
            time.sleep(0.05)
        # The marker arrived after anything queued: delivery is in order.
        expected = [("celine/queued", b"while you were away")] if read_allowed else []
        assert away.messages == [*expected, (marker, b"end")]
