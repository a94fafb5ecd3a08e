"""FederationService refuses settings its loops cannot work with, saying what to change."""

from __future__ import annotations

from typing import Any

import pytest

from backend.errors import StartupError
from backend.federation.service import FederationService
from backend.settings import Settings


class NoAlerts:
    def add_observer(self, callback: Any) -> None:
        raise AssertionError("not reached: construction only")

    async def ingest_remote(self, **kwargs: Any) -> None:
        raise AssertionError("not reached: construction only")


def _settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "site_id": "a",
        "nats_url": "nats://127.0.0.1:4222",
        "federation_enabled": True,
        "heartbeat_interval_seconds": 0.5,
        "link_degraded_after_s": 2.0,
        "link_down_after_s": 4.0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"nats_url": None}, "needs AURORA_NATS_URL"),
        ({"heartbeat_interval_seconds": 0}, "AURORA_HEARTBEAT_INTERVAL_SECONDS must be > 0"),
        ({"link_degraded_after_s": 5.0}, "AURORA_LINK_DEGRADED_AFTER_S <= AURORA_LINK_DOWN"),
        ({"link_degraded_after_s": 0.5}, "flaps to degraded"),
    ],
)
def test_bad_settings_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(StartupError, match=message):
        FederationService(_settings(**overrides), NoAlerts(), None)  # type: ignore[arg-type]


def test_good_settings_build_a_router_with_the_endpoints() -> None:
    service = FederationService(_settings(), NoAlerts(), None)  # type: ignore[arg-type]
    paths = {route.path for route in service.router.routes}  # type: ignore[attr-defined]
    assert {"/api/v1/sites", "/api/v1/system/topology"} <= paths
    assert service.health()["nats_connected"] is False


def test_health_never_shows_nats_credentials() -> None:
    settings = _settings(nats_url="nats://bench:s3cret@127.0.0.1:4222")
    service = FederationService(settings, NoAlerts(), None)  # type: ignore[arg-type]
    assert service.health()["nats_url"] == "nats://127.0.0.1:4222"
