"""The REST API requires a bearer token: 401 with how to get one, 403 for a missing scope.

The app runs with SQLite and no MQTT/Redis; the verifier reads an in-memory JWKS.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bench.issuer import IssuerKey
from tests.unit.policy.app_client import app_client
from tests.unit.policy.test_tokens import ISSUER

GRANTS = "/api/v1/cps/access/grants"
GRANT = {"uid": "0455AF21", "device_ids": ["stm32f401-door-03"]}


@pytest.fixture
async def client(tmp_path: Path, key: IssuerKey) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(tmp_path, key) as http:
        yield http


def bearer(key: IssuerKey, *scopes: str, **kwargs: object) -> dict[str, str]:
    token = key.mint(issuer=ISSUER, sub="ops", type_="user", scopes=scopes, **kwargs)  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {token}"}


ENDPOINTS = [
    ("GET", "/api/v1/cps/devices"),
    ("GET", "/api/v1/cps/devices/d1"),
    ("POST", "/api/v1/cps/devices/d1/commands"),
    ("POST", "/api/v1/cps/devices/d1/attestations"),
    ("GET", "/api/v1/cps/devices/d1/attestations"),
    ("GET", GRANTS),
    ("POST", GRANTS),
    ("DELETE", f"{GRANTS}/x"),
    ("GET", "/api/v1/alerts"),
    ("POST", "/api/v1/alerts"),
    ("GET", "/api/v1/audit"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_no_token_is_401_with_how_to_get_one(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path, json={})
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert "aurora-bench token" in response.json()["error"]
    assert "api_token" in response.json()["error"]


async def test_every_route_but_health_and_metrics_is_guarded(client: httpx.AsyncClient) -> None:
    # Every operation of the OpenAPI schema, so a route added later without the check
    # fails here.
    schema = (await client.get("/openapi.json")).json()
    checked = 0
    for path, operations in schema["paths"].items():
        if path in ("/healthz", "/metrics") or path.startswith("/mqtt/"):
            continue
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        for method in operations:
            response = await client.request(method.upper(), concrete, json={})
            assert response.status_code == 401, (method, path, response.text)
            checked += 1
    assert checked >= len(ENDPOINTS)


async def test_a_bad_token_is_401_saying_why(client: httpx.AsyncClient, key: IssuerKey) -> None:
    expired = bearer(key, "aurora.admin", now=1_000_000_000.0)
    response = await client.get(GRANTS, headers=expired)
    assert response.status_code == 401
    assert response.json()["error"].startswith("token has expired")
    garbage = await client.get(GRANTS, headers={"Authorization": "Bearer nope"})
    assert garbage.status_code == 401
    assert "not a JWT" in garbage.json()["error"]


async def test_scopes_read_operate_admin(client: httpx.AsyncClient, key: IssuerKey) -> None:
    read, operate, admin = (bearer(key, f"aurora.{s}") for s in ("read", "operate", "admin"))
    assert (await client.get(GRANTS, headers=read)).status_code == 200
    refused = await client.post(GRANTS, json=GRANT, headers=read)
    assert refused.status_code == 403
    assert "needs scope aurora.admin" in refused.json()["error"]
    assert (await client.post(GRANTS, json=GRANT, headers=operate)).status_code == 403
    created = await client.post(GRANTS, json=GRANT, headers=admin)
    assert created.status_code == 201, created.text
    # operate may command (the device is unknown: 404 after the check, not 403)
    command = {"verb": "lockdown"}
    path = "/api/v1/cps/devices/d1/commands"
    assert (await client.post(path, json=command, headers=read)).status_code == 403
    assert (await client.post(path, json=command, headers=operate)).status_code == 404
    assert (await client.post(path, json=command, headers=admin)).status_code == 404
    # a token with only MQTT scopes reads nothing
    assert (await client.get(GRANTS, headers=bearer(key, "mqtt.admin"))).status_code == 403


async def test_healthz_and_metrics_stay_open(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 200
    assert (await client.get("/healthz")).status_code in (200, 503)


async def test_metrics_can_be_closed(tmp_path: Path, key: IssuerKey) -> None:
    async with app_client(tmp_path, key, api_open_metrics=False) as http:
        assert (await http.get("/metrics")).status_code == 401
        assert (await http.get("/metrics", headers=bearer(key, "aurora.read"))).status_code == 200


async def test_auth_can_be_switched_off(tmp_path: Path, key: IssuerKey) -> None:
    async with app_client(tmp_path, key, api_auth=False) as http:
        assert (await http.get(GRANTS)).status_code == 200


async def test_the_openapi_schema_declares_bearer_auth(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
