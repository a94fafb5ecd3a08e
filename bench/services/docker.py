"""The ``docker`` provider: the same servers as containers, through testcontainers.

Imported only when chosen (``--provider docker``), so the bench runs without Docker
libraries. Where no Docker engine answers, :class:`DockerServices` raises a
:class:`~bench.errors.BenchError` saying so at once, instead of timing out later.
The containers get the configs and PKI of the state dir mounted read-only, with the same
mTLS and ACL settings as the local provider. PostgreSQL stays on the local provider, and
docker sites have no leafnode link (two federated sites need the local provider).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from bench.errors import BenchError, ServiceStartError
from bench.pki import CertPair, Pki
from bench.services.config import (
    MosquittoConfig,
    NatsConfig,
    backend_identity,
    mosquitto_acl,
    mosquitto_conf,
    nats_conf,
)
from bench.services.process import tcp_accepts
from bench.services.providers import SiteServers

MOSQUITTO_IMAGE = "eclipse-mosquitto:2.0"
REDIS_IMAGE = "redis:7"
NATS_IMAGE = "nats:2.10"
START_TIMEOUT_S = 60.0


def docker_engine_available() -> bool:
    """True when a Docker engine answers (what the ``docker`` test marker checks)."""
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


class DockerServices:
    """Containers of every site of one bench; :meth:`stop` removes them all."""

    def __init__(self, state_dir: Path, pki: Pki) -> None:
        if not docker_engine_available():
            raise BenchError(
                "provider docker: no Docker engine answers (is the daemon running and "
                "DOCKER_HOST right?); use --provider local to run the system binaries"
            )
        self.state_dir = state_dir
        self.pki = pki
        self._containers: list[Any] = []

    def start_site(self, site_id: str) -> SiteServers:
        """Start Mosquitto, Redis and NATS containers for ``site_id``; where they answer."""
        from testcontainers.core.container import DockerContainer

        work = self.state_dir / site_id / "mosquitto-docker"
        work.mkdir(parents=True, exist_ok=True)
        (work / "acl").write_text(mosquitto_acl([backend_identity(site_id)]))
        server = self.pki.server(f"mosquitto-{site_id}")
        pki_in = Path("/aurora/pki")
        (work / "mosquitto.conf").write_text(
            mosquitto_conf(
                MosquittoConfig(
                    port=8883,
                    host="0.0.0.0",
                    ca=pki_in / "ca.crt",
                    crl=pki_in / "ca.crl",
                    server=CertPair(
                        pki_in / server.cert.relative_to(self.pki.root),
                        pki_in / server.key.relative_to(self.pki.root),
                    ),
                    acl_file=Path("/aurora/conf/acl"),
                    persistence_dir=Path("/mosquitto/data"),
                    run_as_root=True,
                )
            )
        )
        mosquitto = (
            DockerContainer(MOSQUITTO_IMAGE)
            .with_volume_mapping(str(work), "/aurora/conf", "ro")
            .with_volume_mapping(str(self.pki.root), str(pki_in), "ro")
            .with_command("mosquitto -c /aurora/conf/mosquitto.conf")
            .with_exposed_ports(8883)
        )
        # Connections arrive from the Docker bridge, not loopback: protected mode would
        # refuse them.
        redis = DockerContainer(REDIS_IMAGE).with_command(
            "redis-server --save '' --appendonly no --protected-mode no"
        )
        redis = redis.with_exposed_ports(6379)
        # nats-server has no command-line flag for the JetStream domain: mount a config.
        nats_dir = self.state_dir / site_id / "nats-docker"
        nats_dir.mkdir(parents=True, exist_ok=True)
        (nats_dir / "nats.conf").write_text(
            nats_conf(NatsConfig(site_id, 4222, 8222, Path("/data/jetstream"), host="0.0.0.0"))
        )
        nats = (
            DockerContainer(NATS_IMAGE)
            .with_volume_mapping(str(nats_dir), "/aurora/conf", "ro")
            .with_command("-c /aurora/conf/nats.conf")
            .with_exposed_ports(4222)
        )
        started = []
        for name, container, port in (
            ("mosquitto", mosquitto, 8883),
            ("redis", redis, 6379),
            ("nats", nats, 4222),
        ):
            container.start()
            self._containers.append(container)
            host = container.get_container_host_ip()
            mapped = int(container.get_exposed_port(port))
            _wait_tcp(f"{name}-{site_id} (docker)", host, mapped, container)
            started.append((host, mapped))
        (mqtt_host, mqtt_port), (redis_host, redis_port), (nats_host, nats_port) = started
        return SiteServers(
            mqtt_host=mqtt_host,
            mqtt_port=mqtt_port,
            redis_url=f"redis://{redis_host}:{redis_port}/0",
            nats_url=f"nats://{nats_host}:{nats_port}",
        )

    def stop(self) -> None:
        """Stop and remove every container (newest first); idempotent."""
        while self._containers:
            container = self._containers.pop()
            with contextlib.suppress(Exception):
                container.stop()


def _wait_tcp(name: str, host: str, port: int, container: Any) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if tcp_accepts(host, port):
            return
        time.sleep(0.1)
    stdout, stderr = container.get_logs()
    tail = (stdout + stderr).decode("utf-8", "replace")[-4000:]
    raise ServiceStartError(name, f"not accepting connections within {START_TIMEOUT_S:g} s", tail)
