"""What a bench starts: :class:`BenchOptions`, checked by :meth:`BenchOptions.validate`.

Kept apart from :mod:`bench.site` (which runs them) so that module stays small.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from bench.benchfile import DEFAULT_STATE_DIR
from bench.errors import BenchError
from bench.services.providers import PROVIDERS as PROVIDER_FACTORIES
from bench.services.providers import ExternalEndpoints
from bench.wan.conditions import LinkConditions
from bench.wan.topology import support_problem

SITE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
DATABASES = ("sqlite", "postgres")
PROVIDERS = tuple(PROVIDER_FACTORIES)


@dataclass
class BenchOptions:
    """What to start. ``site_env`` adds ``AURORA_*`` variables per site (scenarios shrink
    thresholds this way); ``backend=False`` starts the services only."""

    sites: list[str] = field(default_factory=lambda: ["a"])
    state_dir: Path = DEFAULT_STATE_DIR
    db: str = "sqlite"
    provider: str = "local"
    site_env: dict[str, dict[str, str]] = field(default_factory=dict)
    external: dict[str, ExternalEndpoints] = field(default_factory=dict)
    backend: bool = True
    #: Also start the Sentinel cluster (seed 003), fed by the first site's Mosquitto.
    sentinel: bool = False
    #: How the origin reaches the Sentinel: ``mqtt`` (Mosquitto's bridge) or ``websocket``.
    sentinel_bridge: str = "mqtt"
    #: Sentinel inspection workers (each owns a share of the ingress partitions).
    sentinel_workers: int = 1
    #: The workers' inspection rules file (None: the shipped defaults).
    sentinel_rules: Path | None = None
    #: Each site in its own network namespace, joined by an emulated WAN link with these
    #: conditions (``--wan``, root only; :mod:`bench.wan`); None: loopback as usual.
    wan: LinkConditions | None = None

    def validate(self) -> None:
        """Raise BenchError with what to change when the options cannot work."""
        if not self.sites or len(self.sites) > 2:
            raise BenchError(f"a bench runs one or two sites, not {len(self.sites)}")
        if len(set(self.sites)) != len(self.sites):
            raise BenchError(f"site ids must differ: {self.sites}")
        for site in self.sites:
            if not SITE_ID.fullmatch(site):
                raise BenchError(
                    f"bad site id {site!r}: use 1-32 lowercase letters, digits, '_' or '-'"
                )
        if self.db not in DATABASES:
            raise BenchError(f"unknown database {self.db!r}; choose one of {', '.join(DATABASES)}")
        if self.provider not in PROVIDERS:
            raise BenchError(
                f"unknown provider {self.provider!r}; choose one of {', '.join(PROVIDERS)}"
            )
        if self.sentinel and self.provider != "local":
            raise BenchError("--sentinel runs with the local provider only")
        if self.provider == "external":
            missing = [site for site in self.sites if site not in self.external]
            if missing:
                raise BenchError(
                    f"provider external needs the URLs of every site; missing: {missing}"
                )
        if self.wan is not None:
            self._validate_wan()
        for site, env in self.site_env.items():
            if site not in self.sites:
                raise BenchError(f"site_env names site {site!r}, which is not started")
            bad = [name for name in env if not name.startswith("AURORA_")]
            if bad:
                raise BenchError(f"site_env of {site!r} may only set AURORA_* variables: {bad}")

    def _validate_wan(self) -> None:
        if len(self.sites) != 2:
            raise BenchError(f"--wan joins two sites (e.g. --sites a,b), not {len(self.sites)}")
        if self.provider != "local" or self.sentinel:
            raise BenchError("--wan runs with the local provider and without --sentinel")
        if self.db != "sqlite":
            raise BenchError(
                "--wan runs with --db sqlite (one PostgreSQL cluster on the root namespace's "
                "loopback is not reachable from the site namespaces)"
            )
        problem = support_problem()
        if problem is not None:
            raise BenchError(problem)
