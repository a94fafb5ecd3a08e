"""Running sites: services plus one backend process per site, started and stopped as a whole.

:func:`start_bench` brings everything up (services, backends, ``bench.json``) and returns a
:class:`RunningBench`; any failure on the way, Ctrl-C included, stops what was already
started before the error propagates. Tests reach in through the same object to crash a
backend (``stop_backend(kill=True)``) or partition two sites (``stop_service(site, "nats")``)
and heal them again on the same ports.
"""

from __future__ import annotations

import atexit
import contextlib
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from bench.benchfile import (
    BENCH_FILE,
    BenchInfo,
    MqttEndpoint,
    SiteInfo,
    write_bench_file,
)
from bench.errors import BenchError, ServiceStartError
from bench.issuer import TokenIssuer, start_issuer
from bench.pki import CertPair, Pki
from bench.services.config import PROBE_IDENTITY, backend_identity, sqlite_url
from bench.services.local import LOOPBACK, PostgresCluster
from bench.services.process import Service, ServiceSpec, free_port
from bench.services.providers import PROVIDERS as PROVIDER_FACTORIES
from bench.services.providers import ExternalEndpoints, SiteProvider
from bench.services.sentinel import SentinelCluster, SiteLink
from bench.site_options import DATABASES, PROVIDERS, SITE_ID, BenchOptions
from bench.state_guard import refuse_a_running_bench
from bench.wan.provider import WanProvider

SERVICES = ("mosquitto", "nats", "redis")
BACKEND_START_TIMEOUT_S = 60.0


@dataclass
class _Site:
    """One site's endpoints and processes."""

    site_id: str
    directory: Path
    api_port: int
    mqtt_host: str
    mqtt_port: int
    redis_url: str
    nats_url: str
    nats_http_port: int | None
    leaf_port: int | None
    database_url: str
    #: The token-client listener (local provider only).
    policy_port: int | None = None
    services: dict[str, Service] = field(default_factory=dict)
    backend: Service | None = None
    #: Where the backend listens, its network namespace and the root namespace's address
    #: from there (a WAN bench; see SiteServers).
    api_host: str = LOOPBACK
    netns: str | None = None
    gateway: str | None = None


class RunningBench:
    """A started bench: its ``bench.json`` info, PKI and processes.

    Close it (or use it as a context manager) to stop everything; ``close`` is idempotent.
    """

    def __init__(self, options: BenchOptions, pki: Pki, state_dir: Path) -> None:
        self.options = options
        self.pki = pki
        self.state_dir = state_dir
        self._sites: dict[str, _Site] = {}
        self._postgres: PostgresCluster | None = None
        self._provider: SiteProvider | None = None
        #: The Sentinel cluster when started with ``sentinel=True``.
        self.sentinel: SentinelCluster | None = None
        self._info: BenchInfo | None = None
        #: The token issuer (started first: backends fetch its JWKS) and the REST token.
        self.issuer: TokenIssuer | None = None
        self._api_token: str | None = None
        self._lock = threading.RLock()
        self._closed = False
        _OPEN_BENCHES.add(self)
        #: Seconds the start took: ``services`` (incl. PostgreSQL), ``backends``, ``total``.
        self.startup_s: dict[str, float] = {}
        #: The emulated WAN between the sites (``BenchOptions.wan``): cut, restore, stats.
        self.wan: WanProvider | None = None

    # -- what tests and tools read ---------------------------------------------------------

    @property
    def info(self) -> BenchInfo:
        """The content of ``bench.json``."""
        if self._info is None:
            self._info = BenchInfo(
                state_dir=str(self.state_dir),
                ca=str(self.pki.ca_cert),
                sites={site_id: self._site_info(site) for site_id, site in self._sites.items()},
                sentinel=self.sentinel.info() if self.sentinel and self.sentinel.site else None,
                token_issuer=self.issuer.info() if self.issuer is not None else None,
            )
        return self._info

    @property
    def site_ids(self) -> list[str]:
        """The running sites, in start order."""
        return list(self._sites)

    def site(self, site_id: str) -> SiteInfo:
        """bench.json's entry of ``site_id`` (clear error for an unknown site)."""
        return self.info.site(site_id)

    def probe_cert(self) -> CertPair:
        """Client cert of the bench probe (may read ``#`` and publish under ``aurora/#``)."""
        return self.pki.service(PROBE_IDENTITY)

    def backend_cert(self, site_id: str) -> CertPair:
        """Client cert of a site's backend (CN ``aurora-backend-<site>``)."""
        return self.pki.service(backend_identity(self._site(site_id).site_id))

    def nats_monitor_url(self, site_id: str) -> str | None:
        """The site's nats-server HTTP monitoring URL (None when not started by the bench)."""
        site = self._site(site_id)
        return f"http://{site.api_host}:{site.nats_http_port}" if site.nats_http_port else None

    def leafnode_port(self, site_id: str) -> int | None:
        """The TLS leafnode port a site listens on (the hub, site ``a``), else None."""
        return self._site(site_id).leaf_port

    def site_dir(self, site_id: str) -> Path:
        """``<state>/<site>``: configs, logs and the SQLite database of the site."""
        return self._site(site_id).directory

    def backend_log(self, site_id: str) -> Path:
        """Where the site backend's stdout/stderr go."""
        return self._site(site_id).directory / "backend.log"

    def service(self, site_id: str, service: str) -> Service:
        """The process object of ``mosquitto``, ``nats`` or ``redis`` of a site."""
        site = self._site(site_id)
        try:
            return site.services[service]
        except KeyError:
            if service not in SERVICES:
                raise BenchError(
                    f"unknown service {service!r}; choose one of {', '.join(SERVICES)}"
                ) from None
            raise BenchError(
                f"{service} of site {site_id!r} is not run by the bench "
                f"(provider {self.options.provider})"
            ) from None

    def backend_service(self, site_id: str) -> Service | None:
        """The backend process of a site (None when the bench runs without backends)."""
        return self._site(site_id).backend

    def backend_env(self, site_id: str) -> dict[str, str]:
        """Every ``AURORA_*`` variable the site's backend runs with."""
        site = self._site(site_id)
        cert = self.backend_cert(site_id)
        env = {
            "AURORA_SITE_ID": site.site_id,
            "AURORA_API_HOST": site.api_host,
            "AURORA_API_PORT": str(site.api_port),
            "AURORA_DATABASE_URL": site.database_url,
            "AURORA_REDIS_URL": site.redis_url,
            "AURORA_MQTT_HOST": site.mqtt_host,
            "AURORA_MQTT_PORT": str(site.mqtt_port),
            "AURORA_MQTT_TLS": "true",
            "AURORA_MQTT_CA": str(self.pki.ca_cert),
            "AURORA_MQTT_CERT": str(cert.cert),
            "AURORA_MQTT_KEY": str(cert.key),
            "AURORA_NATS_URL": site.nats_url,
            "AURORA_FEDERATION_ENABLED": "true" if len(self._sites) > 1 else "false",
        }
        if self.issuer is not None:
            env.update(self.issuer.backend_env())
            if site.gateway is not None:  # the issuer listens on every root address
                env["AURORA_AUTH_JWKS_URL"] = self.issuer.jwks_url.replace(
                    LOOPBACK, site.gateway, 1
                )
        sentinel = self.sentinel
        if sentinel is not None and sentinel.site is not None and sentinel.site.site_id == site_id:
            # The origin site's console shows the Sentinel panel (its Redis has the counters).
            env["AURORA_SENTINEL_MONITORS"] = ",".join(
                f"{node.region}={node.monitor}" for node in sentinel.info().nodes
            )
        env.update(self.options.site_env.get(site_id, {}))
        return env

    # -- what tests do to a running bench --------------------------------------------------

    def stop_backend(self, site_id: str, *, kill: bool = False) -> None:
        """Stop the site's backend; ``kill=True`` is SIGKILL (a crash, nothing flushed)."""
        backend = self._site(site_id).backend
        if backend is None:
            return
        if kill:
            backend.kill()
        else:
            backend.stop()

    def start_backend(self, site_id: str, env: Mapping[str, str] | None = None) -> None:
        """(Re)start the site's backend on the same port and wait for ``/healthz``.

        ``env`` (``AURORA_*`` only) replaces the backend's extra settings from now on, e.g.
        ``{"AURORA_INGEST_WORKERS": "2"}`` (the ingest figures restart it with workers);
        ``{}`` goes back to the bench's own. The backend must be stopped.
        """
        site = self._site(site_id)
        if env is not None:
            bad = [name for name in env if not name.startswith("AURORA_")]
            if bad:
                raise BenchError(f"start_backend may only set AURORA_* variables: {bad}")
            site.backend = self._backend_service(site, env)
        if site.backend is None:
            site.backend = self._backend_service(site)
        site.backend.start()

    def stop_service(self, site_id: str, service: str) -> None:
        """Stop ``mosquitto``, ``nats`` or ``redis`` of a site (partition, outage)."""
        self.service(site_id, service).stop()

    def start_service(self, site_id: str, service: str) -> None:
        """Start it again with the same ports and config and wait until it serves."""
        self.service(site_id, service).start()

    def close(self) -> None:
        """Stop every backend and service (backends first); safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            errors: list[BaseException] = []
            sites = list(self._sites.values())
            for site in reversed(sites):
                if site.backend is not None:
                    _collect(errors, site.backend.stop)
            if self.sentinel is not None:
                _collect(errors, self.sentinel.stop)
            for site in reversed(sites):
                for service in reversed(list(site.services.values())):
                    _collect(errors, service.stop)
            if self._postgres is not None:
                _collect(errors, self._postgres.stop)
            if self._provider is not None:
                _collect(errors, self._provider.stop)
            if self.issuer is not None:
                _collect(errors, self.issuer.close)
            if errors:
                raise errors[0]

    def __enter__(self) -> RunningBench:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- assembly (used by start_bench) ----------------------------------------------------

    def _site(self, site_id: str) -> _Site:
        try:
            return self._sites[site_id]
        except KeyError:
            known = ", ".join(self._sites) or "none"
            raise BenchError(f"site {site_id!r} is not running (running: {known})") from None

    def _site_info(self, site: _Site) -> SiteInfo:
        return SiteInfo(
            site_id=site.site_id,
            api=f"http://{site.api_host}:{site.api_port}",
            mqtt=MqttEndpoint(host=site.mqtt_host, port=site.mqtt_port, tls=True),
            policy_mqtt=(
                MqttEndpoint(host=site.mqtt_host, port=site.policy_port, tls=True)
                if site.policy_port is not None
                else None
            ),
            redis=site.redis_url,
            nats=site.nats_url,
            database=site.database_url,
            api_token=self._api_token,
        )

    def _backend_service(self, site: _Site, extra: Mapping[str, str] | None = None) -> Service:
        env = self.backend_env(site.site_id)
        env.update(extra or {})
        return Service(
            ServiceSpec(
                name=f"backend-{site.site_id}",
                command=[sys.executable, "-m", "backend"],
                log=site.directory / "backend.log",
                health_url=f"http://{site.api_host}:{site.api_port}/healthz",
                host=site.api_host,
                port=site.api_port,
                netns=site.netns,
                env=env,
                # Only the bench decides a backend's settings, not the caller's environment.
                drop_env_prefix="AURORA_",
                cwd=site.directory,
                start_timeout_s=BACKEND_START_TIMEOUT_S,
            )
        )

    def _start(self) -> None:
        options = self.options
        began = time.monotonic()
        # A WAN bench's backends fetch the issuer's keys from their namespaces.
        self.issuer = start_issuer(self.state_dir, everywhere=options.wan is not None)
        self._api_token = self.issuer.operator_token()
        provider: SiteProvider
        if options.wan is not None:
            provider = self.wan = WanProvider(self.state_dir, self.pki, options.wan)
        else:
            provider = PROVIDER_FACTORIES[options.provider](
                self.state_dir, self.pki, options.external
            )
        self._provider = provider
        if options.db == "postgres" and provider.runs_postgres:
            self._postgres = PostgresCluster(self.state_dir, free_port())
            self._postgres.start()
        if options.sentinel:
            self.sentinel = SentinelCluster(
                self.state_dir,
                self.pki,
                bridge=options.sentinel_bridge,
                workers=options.sentinel_workers,
                rules=options.sentinel_rules,
            )
        for index, site_id in enumerate(options.sites):
            directory = self.state_dir / site_id
            directory.mkdir(parents=True, exist_ok=True)
            database_url = sqlite_url(directory / "aurora.db")
            if self._postgres is not None:
                database_url = self._postgres.create_database(f"aurora_{site_id}")
            servers = provider.add_site(site_id, directory, index, len(options.sites))
            if self.sentinel is not None and index == 0:
                # The first site is the seed's customer origin (its Mosquitto bridges out);
                # its config is written by add_site and read when the provider starts.
                mosquitto_dir = directory / "mosquitto"
                self.sentinel.attach_origin(
                    mosquitto_dir / "mosquitto.conf", mosquitto_dir / "acl", site_id
                )
            self._sites[site_id] = _Site(
                site_id=site_id,
                directory=directory,
                api_port=servers.api_port or free_port(),
                mqtt_host=servers.mqtt_host,
                mqtt_port=servers.mqtt_port,
                policy_port=servers.policy_port,
                redis_url=servers.redis_url,
                nats_url=servers.nats_url,
                nats_http_port=servers.nats_http_port,
                leaf_port=servers.leaf_port,
                database_url=servers.database_url or database_url,
                services=servers.services,
                api_host=servers.api_host,
                netns=servers.netns,
                gateway=servers.gateway,
            )
        provider.start()
        self.pki.service(PROBE_IDENTITY)
        if self.sentinel is not None:
            origin = next(iter(self._sites.values()))
            self.sentinel.start(
                SiteLink(
                    site_id=origin.site_id,
                    database_url=origin.database_url,
                    redis_url=origin.redis_url,
                    mqtt_host=origin.mqtt_host,
                    mqtt_port=origin.mqtt_port,
                    api_url=f"http://{LOOPBACK}:{origin.api_port}" if options.backend else "",
                    api_token=self._api_token or "",
                )
            )
        services_up = time.monotonic()
        self.startup_s["services"] = services_up - began
        if options.backend:
            # Launch every backend first, then wait: their imports overlap on two cores.
            backends = []
            for site in self._sites.values():
                site.backend = self._backend_service(site)
                site.backend.launch()
                backends.append(site.backend)
            for backend in backends:
                backend.wait_ready()
        self.startup_s["backends"] = time.monotonic() - services_up
        self.startup_s["total"] = time.monotonic() - began
        self._info = None  # computed from the finished assembly
        write_bench_file(self.info)


#: Benches not closed yet; an interpreter exit closes them gracefully (servers flush their
#: state) before mirakuru's own exit hook would SIGKILL whatever is left.
_OPEN_BENCHES: weakref.WeakSet[RunningBench] = weakref.WeakSet()


@atexit.register
def _close_open_benches() -> None:
    for bench in list(_OPEN_BENCHES):
        with contextlib.suppress(Exception):
            bench.close()


#: Ports are picked free but another process may bind one before our server does; a start
#: that fails only for that reason is retried with fresh ports.
PORT_CLASH_RETRIES = 2


def start_bench(options: BenchOptions) -> RunningBench:
    """Start every service and backend of ``options`` and write ``bench.json``.

    On any failure (or Ctrl-C) everything already started is stopped again before the
    error propagates, so a failed start leaves no process behind.
    """
    options.validate()
    state_dir = Path(options.state_dir).absolute()
    state_dir.mkdir(parents=True, exist_ok=True)
    refuse_a_running_bench(state_dir)
    (state_dir / BENCH_FILE).unlink(missing_ok=True)
    pki = Pki.ensure(state_dir / "pki")
    attempt = 0
    while True:
        bench = RunningBench(options, pki, state_dir)
        try:
            bench._start()
        except ServiceStartError as error:
            _abandon(bench)
            if attempt >= PORT_CLASH_RETRIES or not is_port_clash(error):
                raise
            attempt += 1
            continue
        except BaseException:
            _abandon(bench)
            raise
        return bench


def is_port_clash(error: ServiceStartError) -> bool:
    """True when a server failed only because its port was taken meanwhile."""
    text = f"{error.reason}\n{error.log_tail}".lower()
    return any(
        sign in text
        for sign in ("already taken", "address already in use", "address in use", "eaddrinuse")
    )


def _abandon(bench: RunningBench) -> None:
    try:
        bench.close()
    finally:
        (bench.state_dir / BENCH_FILE).unlink(missing_ok=True)


def _collect(errors: list[BaseException], action: Callable[[], object]) -> None:
    try:
        action()
    except Exception as error:
        errors.append(error)


__all__ = [
    "DATABASES",
    "PROVIDERS",
    "SITE_ID",
    "BenchOptions",
    "ExternalEndpoints",
    "RunningBench",
    "start_bench",
]
