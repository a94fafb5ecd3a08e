"""Where a site's servers come from: the ``local``, ``docker`` and ``external`` providers.

:func:`bench.site.start_bench` asks its :class:`SiteProvider` for each site's
:class:`SiteServers` (endpoints, plus the processes when the bench runs them), then calls
:meth:`SiteProvider.start` once for all sites and :meth:`SiteProvider.stop` on close. A
new kind of provider (a lab's Kubernetes namespace, say) is one more class here and one
entry in :data:`PROVIDERS`; ``bench/site.py`` does not change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bench.errors import BenchError
from bench.pki import Pki
from bench.services.local import LOOPBACK, mosquitto_service, nats_service, redis_service
from bench.services.process import Service, free_port


@dataclass(frozen=True)
class ExternalEndpoints:
    """Servers the user runs (provider ``external``); the bench starts none of them.

    The broker must accept client certificates of the bench CA (``<state>/pki/ca.crt``).
    """

    mqtt_host: str
    mqtt_port: int
    redis_url: str
    nats_url: str
    database_url: str | None = None


@dataclass
class SiteServers:
    """One site's MQTT, Redis and NATS endpoints as a provider hands them out.

    ``services`` holds the processes the bench runs (local provider only: tests stop and
    restart them); ``database_url`` is set when the provider brings its own database.
    """

    mqtt_host: str
    mqtt_port: int
    redis_url: str
    nats_url: str
    nats_http_port: int | None = None
    leaf_port: int | None = None
    database_url: str | None = None
    #: The token-client listener (local provider only: its plugin asks the backend).
    policy_port: int | None = None
    #: The backend's API port when the provider had to fix it (Mosquitto's plugin needs it).
    api_port: int | None = None
    services: dict[str, Service] = field(default_factory=dict)
    #: Where the backend listens (a site in its own network namespace: its address there).
    api_host: str = LOOPBACK
    #: The network namespace the backend runs in (the WAN bench), else None.
    netns: str | None = None
    #: The root namespace's address as seen from the site's namespace (the backend fetches
    #: the bench's token issuer keys there), else None.
    gateway: str | None = None


class SiteProvider(Protocol):
    """Provides the servers of every site of one bench."""

    #: The provider's name as ``--provider`` spells it.
    name: str
    #: True when the bench should run PostgreSQL itself for ``--db postgres``.
    runs_postgres: bool

    def add_site(self, site_id: str, directory: Path, index: int, count: int) -> SiteServers:
        """Endpoints of site number ``index`` (0-based) of ``count``; may start nothing yet."""
        ...

    def start(self) -> None:
        """Bring up whatever :meth:`add_site` prepared (all sites side by side)."""
        ...

    def stop(self) -> None:
        """Stop what the provider itself owns (not the per-site ``services``); idempotent."""
        ...


class LocalProvider:
    """Binaries on PATH as child processes on free loopback ports (the default)."""

    name = "local"
    runs_postgres = True

    def __init__(self, pki: Pki) -> None:
        self._pki = pki
        self._hub_leaf_port: int | None = None
        self._services: list[Service] = []

    def add_site(self, site_id: str, directory: Path, index: int, count: int) -> SiteServers:
        """Configure Mosquitto, NATS and Redis for the site (started by :meth:`start`)."""
        redis_port, nats_port, http_port, mqtt_port = (free_port() for _ in range(4))
        api_port, policy_port = free_port(), free_port()
        # The first site is the leafnode hub; the second attaches to it (DESIGN: NATS).
        leaf_listen = free_port() if index == 0 and count > 1 else None
        self._hub_leaf_port = self._hub_leaf_port or leaf_listen
        servers = SiteServers(
            mqtt_host=LOOPBACK,
            mqtt_port=mqtt_port,
            redis_url=f"redis://{LOOPBACK}:{redis_port}/0",
            nats_url=f"nats://{LOOPBACK}:{nats_port}",
            nats_http_port=http_port,
            leaf_port=leaf_listen,
            policy_port=policy_port,
            api_port=api_port,
        )
        servers.services["redis"] = redis_service(directory, site_id, redis_port)
        servers.services["nats"] = nats_service(
            directory,
            self._pki,
            site_id,
            port=nats_port,
            http_port=http_port,
            leaf_listen_port=leaf_listen,
            leaf_remote_port=self._hub_leaf_port if index > 0 else None,
        )
        # The token listener's plugin asks this site's backend (its /mqtt/* router).
        servers.services["mosquitto"] = mosquitto_service(
            directory,
            self._pki,
            site_id,
            mqtt_port,
            policy_port=policy_port,
            policy_http_port=api_port,
        )
        self._services.extend(servers.services.values())
        return servers

    def start(self) -> None:
        """Launch every server, then wait for each: they come up side by side."""
        for service in self._services:
            service.launch()
        for service in self._services:
            service.wait_ready()

    def stop(self) -> None:
        """Nothing of its own: the bench stops the per-site services in order."""


class DockerProvider:
    """The same servers as containers (testcontainers), for hosts without the binaries."""

    name = "docker"
    runs_postgres = True

    def __init__(self, state_dir: Path, pki: Pki) -> None:
        # Imported only when chosen, so the bench runs without Docker libraries.
        from bench.services.docker import DockerServices

        self._docker = DockerServices(state_dir, pki)

    def add_site(self, site_id: str, directory: Path, index: int, count: int) -> SiteServers:
        """Start the site's containers and return where they answer."""
        return self._docker.start_site(site_id)

    def start(self) -> None:
        """The containers were started (and waited for) by :meth:`add_site`."""

    def stop(self) -> None:
        """Remove the containers."""
        self._docker.stop()


class ExternalProvider:
    """Servers the user runs, given by URL (a lab broker, an EMQX or NATS cluster)."""

    name = "external"
    runs_postgres = False

    def __init__(self, endpoints: Mapping[str, ExternalEndpoints]) -> None:
        self._endpoints = dict(endpoints)

    def add_site(self, site_id: str, directory: Path, index: int, count: int) -> SiteServers:
        """The endpoints the user gave for ``site_id``."""
        try:
            given = self._endpoints[site_id]
        except KeyError:
            raise BenchError(
                f"provider external needs the URLs of every site; missing: [{site_id!r}]"
            ) from None
        return SiteServers(
            mqtt_host=given.mqtt_host,
            mqtt_port=given.mqtt_port,
            redis_url=given.redis_url,
            nats_url=given.nats_url,
            database_url=given.database_url,
        )

    def start(self) -> None:
        """Nothing to start: the user runs the servers."""

    def stop(self) -> None:
        """Nothing to stop."""


#: ``--provider`` name -> how to build it from (state dir, PKI, external endpoints).
PROVIDERS: dict[str, Callable[[Path, Pki, Mapping[str, ExternalEndpoints]], SiteProvider]] = {
    "local": lambda _state, pki, _external: LocalProvider(pki),
    "docker": lambda state, pki, _external: DockerProvider(state, pki),
    "external": lambda _state, _pki, external: ExternalProvider(external),
}
