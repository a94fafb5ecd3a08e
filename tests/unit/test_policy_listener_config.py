"""The token listener and the aurora_auth plugin in mosquitto.conf, checked without a broker."""

from __future__ import annotations

from pathlib import Path

from bench.benchfile import BenchInfo, MqttEndpoint, SiteInfo
from bench.pki import CertPair
from bench.services.config import MosquittoConfig, PolicyListener, mosquitto_conf

PAIR = CertPair(Path("/pki/servers/m.crt"), Path("/pki/servers/m.key"))
ACL = Path("/state/a/mosquitto/acl")


def _conf(policy: PolicyListener | None) -> list[str]:
    text = mosquitto_conf(
        MosquittoConfig(
            port=18883,
            ca=Path("/pki/ca.crt"),
            server=PAIR,
            acl_file=ACL,
            persistence_dir=Path("/state/a/mosquitto"),
            policy=policy,
        )
    )
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def _listener_block(lines: list[str], port: int) -> list[str]:
    """The lines from ``listener <port>`` up to the next listener line."""
    start = lines.index(f"listener {port} 127.0.0.1")
    block = []
    for line in lines[start + 1 :]:
        if line.startswith("listener "):
            break
        block.append(line)
    return block


POLICY = PolicyListener(port=18884, plugin=Path("/b/aurora_auth.so"), http_port=8080)


def test_without_policy_the_broker_applies_the_acl_file_itself() -> None:
    lines = _conf(None)
    assert f"acl_file {ACL}" in lines
    assert not [line for line in lines if line.startswith("plugin")]
    assert [line for line in lines if line.startswith("listener")] == ["listener 18883 127.0.0.1"]


def test_policy_adds_a_server_auth_token_listener() -> None:
    lines = _conf(POLICY)
    listeners = [line for line in lines if line.startswith("listener")]
    assert listeners == ["listener 18883 127.0.0.1", "listener 18884 127.0.0.1"]
    token = _listener_block(lines, 18884)
    for required in (
        "certfile /pki/servers/m.crt",
        "keyfile /pki/servers/m.key",
        "require_certificate false",
        "use_identity_as_username false",
        "tls_version tlsv1.3",
    ):
        assert required in token
    # The device listener keeps its certificate identity.
    mtls = _listener_block(lines, 18883)
    assert "require_certificate true" in mtls
    assert "use_identity_as_username true" in mtls
    # Never anonymous, on either listener (per_listener_settings false: one setting).
    assert "allow_anonymous false" in lines
    assert "allow_anonymous true" not in lines


def test_the_plugin_gets_the_acl_file_instead_of_the_broker() -> None:
    # An acl_file would pre-empt the plugin (and never checks subscriptions).
    lines = _conf(POLICY)
    assert not [line for line in lines if line.startswith("acl_file")]
    assert "plugin /b/aurora_auth.so" in lines
    options = dict(
        line.removeprefix("plugin_opt_").split(" ", 1)
        for line in lines
        if line.startswith("plugin_opt_")
    )
    assert options == {
        "http_host": "127.0.0.1",
        "http_port": "8080",
        "http_getuser_uri": "/mqtt/user",
        "http_superuser_uri": "/mqtt/superuser",
        "http_aclcheck_uri": "/mqtt/acl",
        "http_params_mode": "json",
        "http_response_mode": "json",
        "http_timeout_ms": "1000",
        "http_retry_after_ms": "1000",
        "cache": "true",
        "auth_cache_seconds": "30",
        "acl_cache_seconds": "30",
        "max_password_bytes": "8192",
        "cert_acl_file": str(ACL),
    }


def test_cache_and_modes_are_rendered_as_given() -> None:
    policy = PolicyListener(
        port=1,
        plugin=Path("/p.so"),
        http_port=2,
        params_mode="form",
        response_mode="status",
        cache=False,
    )
    lines = _conf(policy)
    assert "plugin_opt_cache false" in lines
    assert "plugin_opt_http_params_mode form" in lines
    assert "plugin_opt_http_response_mode status" in lines


def test_bench_file_names_the_token_listener_and_reads_old_files() -> None:
    site = {
        "site_id": "a",
        "api": "http://127.0.0.1:1",
        "mqtt": {"host": "127.0.0.1", "port": 2, "tls": True},
        "redis": "redis://127.0.0.1:3/0",
        "nats": "nats://127.0.0.1:4",
        "database": "sqlite+aiosqlite:///x",
    }
    old = BenchInfo.model_validate({"state_dir": "/s", "ca": "/s/ca.crt", "sites": {"a": site}})
    assert old.site("a").policy_mqtt is None
    new = SiteInfo.model_validate(
        {**site, "policy_mqtt": {"host": "127.0.0.1", "port": 5, "tls": True}}
    )
    assert new.policy_mqtt == MqttEndpoint(host="127.0.0.1", port=5, tls=True)
    assert SiteInfo.model_validate_json(new.model_dump_json()) == new


def test_a_shared_cache_names_redis_as_go_auth_does() -> None:
    shared = PolicyListener(
        port=18884, plugin=Path("/b/aurora_auth.so"), http_port=8080, shared_cache="10.0.0.5:6380"
    )
    lines = _conf(shared)
    assert "plugin_opt_cache_type redis" in lines
    assert "plugin_opt_cache_host 10.0.0.5" in lines
    assert "plugin_opt_cache_port 6380" in lines
    assert not any(line.startswith("plugin_opt_cache_type") for line in _conf(POLICY))
