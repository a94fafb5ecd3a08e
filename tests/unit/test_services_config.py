"""Generated server configs and bench options, checked without starting anything."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from bench.cmd_up import parse_host_port, parse_site_env, parse_sites
from bench.errors import BenchError
from bench.pki import CertPair
from bench.services.config import (
    LeafListener,
    LeafRemote,
    MosquittoConfig,
    NatsConfig,
    backend_identity,
    mosquitto_acl,
    mosquitto_conf,
    nats_conf,
    postgres_url,
    redis_args,
    sqlite_url,
)
from bench.services.process import free_port, log_tail
from bench.site import BenchOptions, ExternalEndpoints

PAIR = CertPair(Path("/pki/servers/m.crt"), Path("/pki/servers/m.key"))


def _mosquitto(**overrides: object) -> str:
    values: dict[str, object] = {
        "port": 18883,
        "ca": Path("/pki/ca.crt"),
        "server": PAIR,
        "acl_file": Path("/state/a/mosquitto/acl"),
        "persistence_dir": Path("/state/a/mosquitto"),
        "log_file": Path("/state/a/mosquitto.log"),
        "crl": Path("/pki/ca.crl"),
    }
    values.update(overrides)
    return mosquitto_conf(MosquittoConfig(**values))  # type: ignore[arg-type]


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_mosquitto_has_one_mtls_listener_and_no_anonymous_access() -> None:
    lines = _lines(_mosquitto())
    assert [line for line in lines if line.startswith("listener")] == ["listener 18883 127.0.0.1"]
    for required in (
        "per_listener_settings false",
        "allow_anonymous false",
        "require_certificate true",
        "use_identity_as_username true",
        "tls_version tlsv1.3",
        "persistence true",
        "persistence_location /state/a/mosquitto/",
        "acl_file /state/a/mosquitto/acl",
        "cafile /pki/ca.crt",
        "certfile /pki/servers/m.crt",
        "keyfile /pki/servers/m.key",
        "log_dest file /state/a/mosquitto.log",
        "crlfile /pki/ca.crl",
    ):
        assert required in lines
    assert "allow_anonymous true" not in lines
    assert not [line for line in lines if line.startswith("user ")]


def test_mosquitto_queues_generously() -> None:
    settings = dict(line.split(" ", 1) for line in _lines(_mosquitto()))
    assert int(settings["max_queued_messages"]) >= 100_000
    assert int(settings["max_inflight_messages"]) >= 100


def test_mosquitto_stays_root_when_started_as_root() -> None:
    assert "user root" in _lines(_mosquitto(run_as_root=True))


def test_acl_pins_devices_to_their_own_topics() -> None:
    acl = _lines(mosquitto_acl([backend_identity("a")]))
    assert acl[:4] == [
        "user aurora-backend-a",
        "topic read aurora/#",
        "topic write aurora/access/+/command",
        "topic write aurora/attestation/+/request",
    ]
    probe = acl.index("user bench-probe")
    assert acl[probe + 1 : probe + 3] == ["topic read #", "topic write aurora/#"]
    patterns = {line for line in acl if line.startswith("pattern")}
    assert patterns == {
        "pattern write aurora/sensors/%u/#",
        "pattern write aurora/access/%u/badge_event",
        "pattern write aurora/attestation/%u/response",
        "pattern read aurora/access/%u/command",
        "pattern read aurora/attestation/%u/request",
    }
    # No device-wide write to another id's topics.
    assert not [line for line in acl if line.startswith("topic write aurora/sensors")]


def test_nats_has_a_jetstream_domain_per_site() -> None:
    text = nats_conf(NatsConfig("b", 4300, 8300, Path("/state/b/nats/js")))
    assert 'domain: "b"' in text
    assert 'store_dir: "/state/b/nats/js"' in text
    assert 'listen: "127.0.0.1:4300"' in text
    assert 'http: "127.0.0.1:8300"' in text
    assert "leafnodes" not in text
    assert "ping_interval" not in text  # NATS' own default unless a WAN site asks


def test_a_site_across_a_wan_pings_sooner_and_listens_on_its_namespace_address() -> None:
    config = NatsConfig("b", 4222, 8222, Path("/js"), host="10.201.3.6", ping_interval_s=5)
    text = nats_conf(config)
    assert 'ping_interval: "5s"' in text
    assert 'listen: "10.201.3.6:4222"' in text
    assert redis_args(6379, Path("/w"), "10.201.3.6")[-3] == "no"  # protected mode off
    assert redis_args(6379, Path("/w"))[-3] == "yes"


def test_nats_hub_verifies_leaf_client_certificates() -> None:
    hub = nats_conf(
        NatsConfig(
            "a",
            4300,
            8300,
            Path("/js"),
            leaf_listener=LeafListener(7422, Path("/pki/ca.crt"), PAIR),
        )
    )
    block = hub[hub.index("leafnodes {") :]
    assert 'listen: "127.0.0.1:7422"' in block
    assert "verify: true" in block
    assert 'ca_file: "/pki/ca.crt"' in block
    assert "remotes" not in block


def test_nats_leaf_attaches_over_tls_with_its_own_cert() -> None:
    client = CertPair(Path("/pki/services/nats-leaf-b.crt"), Path("/pki/services/nats-leaf-b.key"))
    leaf = nats_conf(
        NatsConfig(
            "b",
            4301,
            8301,
            Path("/js"),
            leaf_remote=LeafRemote("tls://127.0.0.1:7422", Path("/pki/ca.crt"), client),
        )
    )
    block = leaf[leaf.index("leafnodes {") :]
    assert 'url: "tls://127.0.0.1:7422"' in block
    assert 'cert_file: "/pki/services/nats-leaf-b.crt"' in block
    assert "listen" not in block


def test_nats_quotes_paths_safely() -> None:
    text = nats_conf(NatsConfig("a", 1, 2, Path('/state dir/"odd"/js')))
    assert 'store_dir: "/state dir/\\"odd\\"/js"' in text


def test_redis_keeps_nothing_on_disk_and_listens_on_loopback() -> None:
    args = redis_args(6380, Path("/state/a/redis"))
    pairs = dict(zip(args[::2], args[1::2], strict=True))
    assert pairs["--save"] == ""
    assert pairs["--appendonly"] == "no"
    assert pairs["--bind"] == "127.0.0.1"
    assert pairs["--port"] == "6380"


def test_database_urls() -> None:
    assert sqlite_url(Path("/s/a/aurora.db")) == "sqlite+aiosqlite:////s/a/aurora.db"
    assert postgres_url("127.0.0.1", 5433, "aurora_a") == (
        "postgresql+asyncpg://postgres@127.0.0.1:5433/aurora_a"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (BenchOptions(sites=[]), "one or two sites"),
        (BenchOptions(sites=["a", "b", "c"]), "one or two sites"),
        (BenchOptions(sites=["a", "a"]), "must differ"),
        (BenchOptions(sites=["A"]), "bad site id"),
        (BenchOptions(db="mysql"), "sqlite, postgres"),
        (BenchOptions(provider="k8s"), "local, docker, external"),
        (BenchOptions(provider="external"), "URLs of every site"),
        (BenchOptions(site_env={"b": {"AURORA_X": "1"}}), "not started"),
        (BenchOptions(site_env={"a": {"PATH": "/x"}}), "only set AURORA_"),
    ],
)
def test_bad_options_say_what_to_change(options: BenchOptions, message: str) -> None:
    with pytest.raises(BenchError, match=message):
        options.validate()


def test_good_options_pass() -> None:
    BenchOptions(sites=["a", "b"], db="postgres").validate()
    BenchOptions(
        provider="external",
        external={"a": ExternalEndpoints("broker", 8883, "redis://r:6379/0", "nats://n:4222")},
    ).validate()


def test_cli_option_parsers() -> None:
    assert parse_sites("a, b") == ["a", "b"]
    assert parse_site_env(("AURORA_X=1", "b:AURORA_Y=a=b"), ["a", "b"]) == {
        "a": {"AURORA_X": "1"},
        "b": {"AURORA_X": "1", "AURORA_Y": "a=b"},
    }
    assert parse_host_port("broker.lab:8883") == ("broker.lab", 8883)
    with pytest.raises(click.BadParameter):
        parse_sites(" , ")
    with pytest.raises(click.BadParameter):
        parse_site_env(("a:PATH=/x",), ["a"])
    with pytest.raises(click.BadParameter):
        parse_host_port("broker")


def test_log_tail_keeps_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    assert log_tail(log) == ""
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    tail = log_tail(log, 3)
    assert tail.splitlines() == ["line 97", "line 98", "line 99"]


def test_free_ports_are_bindable_distinct_and_outside_the_ephemeral_range() -> None:
    import socket

    from bench.services.process import _ephemeral_range

    low, _high = _ephemeral_range()
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(port < low for port in ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[0]))


@pytest.mark.parametrize(
    ("reason", "tail", "clash"),
    [
        ("port 127.0.0.1:20001 is already taken by another process", "", True),
        ("exited with code 1", "Error: Address already in use", True),
        ("exited with code 1", "listen tcp 127.0.0.1:4222: bind: address already in use", True),
        ("exited with code 2", "invalid backend settings:\n  AURORA_SITE_ID: ...", False),
        ("not ready within 30 s", "", False),
    ],
)
def test_port_clashes_are_told_apart_from_real_failures(
    reason: str, tail: str, clash: bool
) -> None:
    from bench.errors import ServiceStartError
    from bench.site import is_port_clash

    assert is_port_clash(ServiceStartError("x", reason, tail)) is clash
