"""Federation settings: the validator refuses what the loops cannot work with, and the
service built from good settings exposes its endpoints and a credential-free health."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import ValidationError

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
    with pytest.raises(ValidationError, match=message):
        _settings(**overrides)


def test_every_problem_is_named_at_once() -> None:
    with pytest.raises(ValidationError) as caught:
        _settings(nats_url=None, heartbeat_interval_seconds=-1)
    text = str(caught.value)
    assert "needs AURORA_NATS_URL" in text and "must be > 0" in text


def test_the_checks_apply_only_with_federation_on() -> None:
    settings = _settings(federation_enabled=False, nats_url=None, link_degraded_after_s=0.1)
    assert settings.federation_enabled is False


def test_good_settings_build_a_router_with_the_endpoints() -> None:
    service = FederationService(_settings(), NoAlerts(), None)  # type: ignore[arg-type]
    paths = {route.path for route in service.router.routes}  # type: ignore[attr-defined]
    assert {"/api/v1/sites", "/api/v1/system/topology", "/api/v1/federation/iocs"} <= paths
    assert service.health().nats_connected is False


def test_operations_have_response_models_and_unique_ids() -> None:
    service = FederationService(_settings(), NoAlerts(), None)  # type: ignore[arg-type]
    app = FastAPI()
    app.include_router(service.router)
    schema = app.openapi()
    operations = {
        path: item["get"]
        for path, item in schema["paths"].items()
        if path.startswith(("/api/v1/sites", "/api/v1/system", "/api/v1/federation"))
    }
    ids = [op["operationId"] for op in operations.values()]
    assert sorted(ids) == [
        "federation_list_sites",
        "federation_shared_iocs",
        "federation_topology",
    ]
    for op in operations.values():
        ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.rsplit("/", 1)[1] in schema["components"]["schemas"]
    topology = schema["components"]["schemas"]["Topology"]
    assert set(topology["required"]) == {"local_site", "nodes", "links", "federation"}


def test_health_never_shows_nats_credentials() -> None:
    settings = _settings(nats_url="nats://bench:s3cret@127.0.0.1:4222")
    service = FederationService(settings, NoAlerts(), None)  # type: ignore[arg-type]
    assert service.health().nats_url == "nats://127.0.0.1:4222"
