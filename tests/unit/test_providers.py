"""Site providers: one class per kind behind the SiteProvider protocol (no servers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.errors import BenchError
from bench.services.providers import (
    PROVIDERS,
    ExternalEndpoints,
    ExternalProvider,
    LocalProvider,
    SiteProvider,
)
from bench.site import PROVIDERS as SITE_PROVIDERS


def test_every_provider_name_has_a_factory_and_the_cli_offers_them_all() -> None:
    assert set(PROVIDERS) == {"local", "docker", "external"}
    assert tuple(PROVIDERS) == SITE_PROVIDERS


def test_external_hands_out_the_users_endpoints(tmp_path: Path) -> None:
    given = ExternalEndpoints("broker", 8883, "redis://r:6379/0", "nats://n:4222", "sqlite://x")
    provider: SiteProvider = PROVIDERS["external"](tmp_path, None, {"a": given})  # type: ignore[arg-type]
    assert isinstance(provider, ExternalProvider)
    assert provider.runs_postgres is False  # the user's database, or SQLite
    servers = provider.add_site("a", tmp_path, 0, 1)
    assert (servers.mqtt_host, servers.mqtt_port) == ("broker", 8883)
    assert (servers.redis_url, servers.nats_url) == ("redis://r:6379/0", "nats://n:4222")
    assert servers.database_url == "sqlite://x"
    assert servers.services == {}  # nothing for the bench to stop or restart
    provider.start()
    provider.stop()


def test_external_without_a_sites_urls_says_which(tmp_path: Path) -> None:
    provider = ExternalProvider({})
    with pytest.raises(BenchError, match="missing: \\['b'\\]"):
        provider.add_site("b", tmp_path, 0, 1)


def test_local_runs_postgres_itself() -> None:
    assert LocalProvider.runs_postgres is True
    assert LocalProvider.name == "local"
