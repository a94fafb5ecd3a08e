"""Pure config renderers of the Sentinel (seed 003): nats-server nodes and the origin bridge.

No I/O; unit-tested. DESIGN.md "Sentinel — decided here" and "Facts verified on this machine
for Sentinel" are the source of every setting:

* three nodes (one per seed region) in one cluster, routes over TLS with a route password
  (the bench's server certificates carry only the serverAuth usage, so routes authenticate
  by password and are encrypted and server-verified by TLS);
* JetStream on every node, an MQTT listener (3.1.1, ``stream_replicas 3``) and a WebSocket
  listener (MQTT over WebSocket answers on ``/mqtt``) — every external listener TLS 1.3 with
  the bench CA;
* accounts: ``AUTH`` holds the callout service, ``SENTINEL`` (the record account) the
  bridge, the workers and the record ``MQTT_ALERTS``, ``CLIENTS_0 .. CLIENTS_{K-1}`` the
  clients, spread by a hash of their id (:mod:`backend.sentinel.shards`: one ``$MQTT_msgs``
  per shard, so no stream carries every QoS 1 subscriber's consumer), ``SYS`` the system
  account. ``SENTINEL`` exports the stream ``clients.*.alerts`` to the shard accounts only,
  and each imports it: the record's core copy reaches NATS and MQTT QoS 0 subscribers in
  the shards, while a client's permissions still allow its own subject only. Each shard
  has one service user, the worker's ``sentinel-feed-<k>``, which stores the QoS 1 copies
  in that shard's ``$MQTT_msgs``. ``auth_callout`` sends every other connect to the Python
  service; the service users bypass it (``auth_users``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from backend.sentinel.naming import STREAM_SUBJECTS
from backend.sentinel.partitions import PARTITIONS, partition_mapping
from backend.sentinel.shards import (
    DEFAULT_SHARDS,
    RECORD_ACCOUNT,
    check_shards,
    feed_user,
    shard_account,
)
from bench.pki import CertPair

#: The seed's regions in its order (traffic split 50/30/20).
REGIONS = ("us-east", "eu-west", "ap-south")
REGION_SHARES = {"us-east": 0.5, "eu-west": 0.3, "ap-south": 0.2}
CLUSTER_NAME = "aurora-sentinel"
AUTH_ACCOUNT = "AUTH"
SYSTEM_ACCOUNT = "SYS"
#: Service identities that bypass the callout (they are not Auth DB clients).
CALLOUT_USER = "sentinel-callout"
BRIDGE_USER = "sentinel-bridge"
WORKER_USER = "sentinel-worker"
#: Where the origin bridge puts ``clients/<id>/alerts`` on the Sentinel (MQTT topic prefix);
#: NATS sees it as ``sentinel.ingress.clients.<id>.alerts`` (DESIGN: the ingress).
INGRESS_TOPIC_PREFIX = "sentinel/ingress/"
ORIGIN_TOPIC = "clients/+/alerts"
#: Consumers a stream may have: one per QoS 1 MQTT subscription in the cluster (see node_conf).
MAX_CONSUMERS_PER_STREAM = 1_000_000
#: File descriptors a node may hold: the seed wants many idle connections per node.
NODE_NOFILE = 65_536


def _q(value: object) -> str:
    # JSON strings are valid NATS config strings and escape what needs escaping.
    return json.dumps(str(value))


@dataclass(frozen=True)
class NodePorts:
    """The loopback ports of one node."""

    client: int
    http: int
    cluster: int
    mqtt: int
    websocket: int


@dataclass(frozen=True)
class ServiceSecrets:
    """Passwords of the identities that bypass the callout, and the callout issuer key.

    ``issuer_seed`` is an nkey *account* seed (``SA...``); ``issuer_public`` its public key
    (``A...``), which the servers trust to sign callout responses and user JWTs.
    """

    route_password: str
    callout_password: str
    bridge_password: str
    worker_password: str
    issuer_seed: str
    issuer_public: str


@dataclass(frozen=True)
class NodeConfig:
    """Inputs of one node's config file."""

    region: str
    ports: NodePorts
    peers: tuple[int, ...]  # cluster ports of the other nodes
    store_dir: Path
    ca: Path
    server: CertPair
    secrets: ServiceSecrets
    host: str = "127.0.0.1"
    max_file_store: int = 2 * 1024**3
    max_memory_store: int = 256 * 1024**2
    #: Ingress partitions (backend.sentinel.partitions: per-client order across workers).
    partitions: int = PARTITIONS
    #: Client shard accounts (backend.sentinel.shards); callouts and workers must agree.
    shards: int = DEFAULT_SHARDS


def server_name(region: str) -> str:
    """The node's ``server_name`` (and certificate name): ``sentinel-<region>``."""
    return f"sentinel-{region}"


def _tls_block(indent: str, config: NodeConfig, *, external: bool) -> list[str]:
    lines = [
        f"{indent}tls {{",
        f"{indent}  cert_file: {_q(config.server.cert)}",
        f"{indent}  key_file: {_q(config.server.key)}",
        f"{indent}  ca_file: {_q(config.ca)}",
        f"{indent}  timeout: 5",
    ]
    if external:
        # Seed: "All external connections use TLS 1.3".
        lines.append(f'{indent}  min_version: "1.3"')
    lines.append(f"{indent}}}")
    return lines


def node_conf(config: NodeConfig) -> str:
    """nats-server config text of one Sentinel node."""
    host, ports, secrets = config.host, config.ports, config.secrets
    source, destination = partition_mapping(config.partitions)
    routes = ", ".join(
        _q(f"nats-route://route:{secrets.route_password}@{host}:{port}") for port in config.peers
    )
    lines = [
        "# generated by aurora-bench (Sentinel node)",
        f"server_name: {_q(server_name(config.region))}",
        f"listen: {_q(f'{host}:{ports.client}')}",
        f"http: {_q(f'{host}:{ports.http}')}",
        *_tls_block("", config, external=True),
        "jetstream {",
        f"  store_dir: {_q(config.store_dir)}",
        f"  max_memory_store: {config.max_memory_store}",
        f"  max_file_store: {config.max_file_store}",
        # nats-server 2.15 caps a stream at 1,000 consumers unless told otherwise, and every
        # QoS 1 MQTT subscription is a consumer of $MQTT_msgs: the cap refused subscriber
        # 1,001 onwards (SUBACK failure; node log "maximum consumers limit reached").
        "  limits {",
        f"    default_max_consumers: {MAX_CONSUMERS_PER_STREAM}",
        "  }",
        "}",
        "cluster {",
        f"  name: {_q(CLUSTER_NAME)}",
        f"  listen: {_q(f'{host}:{ports.cluster}')}",
        "  authorization {",
        '    user: "route"',
        f"    password: {_q(secrets.route_password)}",
        "    timeout: 5",
        "  }",
        *_tls_block("  ", config, external=False),
        f"  routes: [{routes}]",
        "}",
        "mqtt {",
        f"  listen: {_q(f'{host}:{ports.mqtt}')}",
        # QoS 1 sessions survive a node loss only when their streams are replicated.
        "  stream_replicas: 3",
        # Every QoS 1 subscription is a consumer replicated on three nodes with a Raft log of
        # its own; on disk, ~3,000 subscribers held ~4,200 threads per node in file I/O and
        # stalled the cluster (no quorum). In memory they stay replicated (a session's acks
        # survive while two of the three nodes do; a restarted node copies them back).
        "  consumer_memory_storage: true",
        *_tls_block("  ", config, external=True),
        "}",
        "websocket {",
        f"  listen: {_q(f'{host}:{ports.websocket}')}",
        *_tls_block("  ", config, external=True),
        "}",
        "accounts {",
        f"  {AUTH_ACCOUNT}: {{",
        "    users: [",
        f"      {{user: {_q(CALLOUT_USER)}, password: {_q(secrets.callout_password)}}}",
        "    ]",
        "  }",
        *_record_account(config, source, destination),
        *(line for index in range(config.shards) for line in _shard_account(config, index)),
        f"  {SYSTEM_ACCOUNT}: {{}}",
        "}",
        f"system_account: {SYSTEM_ACCOUNT}",
        "authorization {",
        "  auth_callout {",
        f"    issuer: {_q(secrets.issuer_public)}",
        f"    account: {AUTH_ACCOUNT}",
        f"    auth_users: [{', '.join(_q(user) for user in service_users(config.shards))}]",
        "  }",
        # A callout that does not answer must not hang a connect for long (issue: "refused
        # quickly, never hang"); the server's default is 2 s per attempt.
        "  timeout: 2",
        "}",
    ]
    return "\n".join(lines) + "\n"


def service_users(shards: int) -> list[str]:
    """Every identity that bypasses the callout: callout, bridge, worker, the shard feeds."""
    return [CALLOUT_USER, BRIDGE_USER, WORKER_USER, *(feed_user(i) for i in range(shards))]


def _record_account(config: NodeConfig, source: str, destination: str) -> list[str]:
    secrets = config.secrets
    shards = ", ".join(shard_account(index) for index in range(check_shards(config.shards)))
    (alerts,) = STREAM_SUBJECTS
    return [
        f"  {RECORD_ACCOUNT}: {{",
        "    jetstream: enabled",
        "    users: [",
        f"      {{user: {_q(BRIDGE_USER)}, password: {_q(secrets.bridge_password)}}}",
        f"      {{user: {_q(WORKER_USER)}, password: {_q(secrets.worker_password)}}}",
        "    ]",
        # One client's ingress always lands in the same partition, so one worker owns it.
        f"    mappings: {{ {_q(source)}: {_q(destination)} }}",
        # The record's core copy, for the shard accounts only (each imports it).
        f"    exports: [ {{stream: {_q(alerts)}, accounts: [{shards}]}} ]",
        "  }",
    ]


def _shard_account(config: NodeConfig, index: int) -> list[str]:
    (alerts,) = STREAM_SUBJECTS
    return [
        f"  {shard_account(index)}: {{",
        # Its own $MQTT_* streams: the QoS 1 consumers of this shard's clients only.
        "    jetstream: enabled",
        "    users: [",
        f"      {{user: {_q(feed_user(index))}, password: {_q(config.secrets.worker_password)}}}",
        "    ]",
        f"    imports: [ {{stream: {{account: {RECORD_ACCOUNT}, subject: {_q(alerts)}}}}} ]",
        "  }",
    ]


@dataclass(frozen=True)
class BridgeConfig:
    """Inputs of the origin Mosquitto's bridge to the Sentinel (one connection, all nodes)."""

    site_id: str
    addresses: tuple[tuple[str, int], ...]  # every node's MQTT listener, tried in order
    ca: Path
    password: str


def bridge_conf(config: BridgeConfig) -> str:
    """Mosquitto bridge section: ``clients/+/alerts`` out to the Sentinel ingress.

    MQTT 3.1.1 and ``try_private false`` because NATS MQTT speaks 3.1.1 only and knows no
    bridge extension (DESIGN: Facts verified); QoS 1 and a persistent session so alerts
    published while the Sentinel is away are queued by Mosquitto, not lost.
    """
    addresses = " ".join(f"{host}:{port}" for host, port in config.addresses)
    lines = [
        "# generated by aurora-bench: customer origin -> Sentinel ingress (seed 003)",
        f"connection sentinel-{config.site_id}",
        f"address {addresses}",
        "round_robin false",
        "bridge_protocol_version mqttv311",
        "try_private false",
        "cleansession false",
        f"remote_clientid sentinel-bridge-{config.site_id}",
        f"remote_username {BRIDGE_USER}",
        f"remote_password {config.password}",
        f"bridge_cafile {config.ca}",
        "bridge_tls_version tlsv1.3",
        "bridge_insecure false",
        "restart_timeout 1 10",
        "keepalive_interval 30",
        "notifications false",
        f"topic {ORIGIN_TOPIC} out 1 {_mosquitto_q('')} {INGRESS_TOPIC_PREFIX}",
    ]
    return "\n".join(lines) + "\n"


def _mosquitto_q(value: str) -> str:
    # Mosquitto's topic line takes "" for an empty local prefix.
    return f'"{value}"'


def publisher_acl(identity: str) -> list[str]:
    """ACL lines that let the alert publisher (its own cert CN) publish client alerts only."""
    return [f"user {identity}", "topic write clients/+/alerts", ""]
