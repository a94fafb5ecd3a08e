"""Sentinel config rendering (pure) and the inspection seam."""

from __future__ import annotations

from pathlib import Path

from backend.sentinel.naming import client_of_ingress, ingress_subject
from backend.sentinel.stages import (
    Action,
    Finding,
    InboundMessage,
    PassThrough,
    Verdict,
    run_stages,
)
from bench.pki import CertPair
from bench.services.sentinel_config import (
    BridgeConfig,
    NodeConfig,
    NodePorts,
    ServiceSecrets,
    bridge_conf,
    node_conf,
)

SECRETS = ServiceSecrets("route-pw", "callout-pw", "bridge-pw", "worker-pw", "SA...", "AISSUER")


def _node(shards: int = 8) -> str:
    return node_conf(
        NodeConfig(
            region="eu-west",
            ports=NodePorts(client=1, http=2, cluster=3, mqtt=4, websocket=5),
            peers=(13, 23),
            store_dir=Path("/s"),
            ca=Path("/ca.crt"),
            server=CertPair(Path("/n.crt"), Path("/n.key")),
            secrets=SECRETS,
            shards=shards,
        )
    )


def test_a_node_has_routes_jetstream_mqtt_websocket_and_the_callout() -> None:
    text = _node()
    assert 'server_name: "sentinel-eu-west"' in text
    assert '"nats-route://route:route-pw@127.0.0.1:13"' in text
    assert '"nats-route://route:route-pw@127.0.0.1:23"' in text
    assert "jetstream {" in text
    assert "stream_replicas: 3" in text
    assert 'listen: "127.0.0.1:5"' in text  # websocket
    assert 'issuer: "AISSUER"' in text
    assert (
        'auth_users: ["sentinel-callout", "sentinel-bridge", "sentinel-worker", '
        + ", ".join(f'"sentinel-feed-{k}"' for k in range(8))
        + "]"
    ) in text
    # Every external listener (client, MQTT, WebSocket) is TLS 1.3; routes use TLS too.
    assert text.count('min_version: "1.3"') == 3
    assert text.count("tls {") == 4


def _account(text: str, name: str) -> str:
    """The block of account ``name`` in a rendered node config."""
    begin = text.index(f"  {name}: {{\n")
    return text[begin : text.index("\n  }\n", begin)]


def test_clients_are_spread_over_shard_accounts_fed_by_the_worker() -> None:
    text = _node(shards=3)
    record = _account(text, "SENTINEL")
    assert "jetstream: enabled" in record
    assert '{user: "sentinel-worker", password: "worker-pw"}' in record
    # The record's core copy goes to the shard accounts, and to nobody else.
    assert (
        'exports: [ {stream: "clients.*.alerts", accounts: [CLIENTS_0, CLIENTS_1, CLIENTS_2]} ]'
        in record
    )
    for index in range(3):
        shard = _account(text, f"CLIENTS_{index}")
        # Its own JetStream, hence its own $MQTT_msgs: a third of the QoS 1 consumers.
        assert "jetstream: enabled" in shard
        # One service user, the worker's feed (same password), bypassing the callout.
        assert shard.count("{user: ") == 1
        assert f'{{user: "sentinel-feed-{index}", password: "worker-pw"}}' in shard
        assert 'imports: [ {stream: {account: SENTINEL, subject: "clients.*.alerts"}} ]' in shard
        assert "exports" not in shard and "mappings" not in shard
    assert "CLIENTS_3" not in text
    assert '"sentinel-feed-2"]' in text  # the last feed user is in auth_users


def test_the_bridge_carries_client_alerts_to_the_ingress() -> None:
    text = bridge_conf(
        BridgeConfig(
            site_id="a",
            addresses=(("127.0.0.1", 1), ("127.0.0.1", 2)),
            ca=Path("/ca.crt"),
            password="bridge-pw",
        )
    )
    assert "address 127.0.0.1:1 127.0.0.1:2" in text
    assert "bridge_protocol_version mqttv311" in text
    assert "try_private false" in text
    assert "bridge_tls_version tlsv1.3" in text
    assert 'topic clients/+/alerts out 1 "" sentinel/ingress/' in text


def test_ingress_subjects_round_trip() -> None:
    assert ingress_subject("c-1") == "sentinel.ingress.clients.c-1.alerts"
    assert client_of_ingress("sentinel.ingress.clients.c-1.alerts") == "c-1"


def _message() -> InboundMessage:
    return InboundMessage("c1", "sentinel.ingress.clients.c1.alerts", b"{}", {}, 0.0, "c1-x")


class _Flag:
    name = "flag"

    def inspect(self, message: InboundMessage) -> Verdict:
        return Verdict(Action.FLAG, (Finding("flag", "r1"),))


class _Block:
    name = "block"

    def inspect(self, message: InboundMessage) -> Verdict:
        return Verdict(Action.QUARANTINE, (Finding("block", "r2", "high"),))


def test_the_chain_delivers_by_default_and_the_strongest_action_wins() -> None:
    assert run_stages([PassThrough()], _message()).action is Action.DELIVER
    flagged = run_stages([PassThrough(), _Flag()], _message())
    assert flagged.action is Action.FLAG
    assert flagged.action.delivers
    blocked = run_stages([_Flag(), _Block(), _Flag()], _message())
    assert blocked.action is Action.QUARANTINE
    assert not blocked.action.delivers
    assert [f.rule for f in blocked.findings] == ["r1", "r2"]


def test_a_peer_cert_serves_and_authenticates_as_a_client(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from bench.pki import Pki

    pair = Pki.ensure(tmp_path / "pki").peer("sentinel-us-east")
    cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    usages = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    # NATS routes verify both ends, so a node's cert must be both (a server cert is not).
    assert usages == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
