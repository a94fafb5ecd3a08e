"""Token clients through the go-auth endpoints: JWT as password (JSON, form) or bearer.

The app is built by ``create_app``; its verifier reads an in-memory JWKS (no servers).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from backend.app import create_app
from backend.settings import Settings
from bench.issuer import IssuerKey
from tests.unit.policy.app_client import app_client
from tests.unit.policy.test_tokens import ISSUER

TWIN_EVENT = "celine/digital-twin/events/pump/pump-001"


@pytest.fixture
async def client(tmp_path: Path, key: IssuerKey) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(tmp_path, key) as http:
        yield http


def token(key: IssuerKey, sub: str = "svc-digital-twin", **kwargs: object) -> str:
    kwargs.setdefault("scopes", ["mqtt.write"])
    return key.mint(issuer=ISSUER, sub=sub, **kwargs)  # type: ignore[arg-type]


async def test_a_token_logs_in_as_password_json_and_form(
    client: httpx.AsyncClient, key: IssuerKey
) -> None:
    for username in ("svc-digital-twin", ""):
        fields = {"username": username, "password": token(key), "clientid": "c1"}
        assert (await client.post("/mqtt/user", json=fields)).status_code == 200
        assert (await client.post("/mqtt/user", data=fields)).status_code == 200


async def test_a_username_other_than_the_subject_is_refused(
    client: httpx.AsyncClient, key: IssuerKey
) -> None:
    fields = {"username": "aurora-backend-a", "password": token(key), "clientid": "c1"}
    response = await client.post("/mqtt/user", json=fields)
    assert response.status_code == 403
    assert "is not the token's subject 'svc-digital-twin'" in response.json()["error"]
    acl = {**fields, "topic": TWIN_EVENT, "acc": 2}
    assert (await client.post("/mqtt/acl", json=acl)).status_code == 403
    # ... and it never becomes the backend (a superuser) by naming it.
    assert (await client.post("/mqtt/superuser", json=fields)).status_code == 403


async def test_acl_with_the_token_as_password(client: httpx.AsyncClient, key: IssuerKey) -> None:
    base = {"username": "svc-digital-twin", "password": token(key), "clientid": "c1"}
    allowed = await client.post("/mqtt/acl", json={**base, "topic": TWIN_EVENT, "acc": 2})
    assert allowed.status_code == 200, allowed.text
    denied = await client.post("/mqtt/acl", data={**base, "topic": TWIN_EVENT, "acc": "4"})
    assert denied.status_code == 403
    assert "holds no 'subscribe' permission" in denied.json()["error"]


async def test_the_seeds_curl_with_a_bearer_header(
    client: httpx.AsyncClient, key: IssuerKey
) -> None:
    # Seed 004 "Debugging": no username, the token in the Authorization header.
    headers = {"Authorization": f"Bearer {token(key)}"}
    user = await client.post("/mqtt/user", headers=headers, json={})
    assert user.status_code == 200, user.text
    acl = await client.post("/mqtt/acl", headers=headers, json={"topic": TWIN_EVENT, "acc": 2})
    assert acl.status_code == 200, acl.text


async def test_superuser_by_role(client: httpx.AsyncClient, key: IssuerKey) -> None:
    admin = token(key, "alice", type_="user", scopes=[], groups=["admins"])
    viewer = token(key, "victor", type_="user", scopes=[], groups=["viewers"])
    assert (await client.post("/mqtt/superuser", json={"password": admin})).status_code == 200
    assert (await client.post("/mqtt/superuser", json={"password": viewer})).status_code == 403


async def test_hostile_tokens_are_denied_with_the_reason(
    client: httpx.AsyncClient, key: IssuerKey
) -> None:
    expired = token(key, now=1_000_000_000.0)
    response = await client.post("/mqtt/user", json={"username": "", "password": expired})
    assert response.status_code == 403
    assert response.json()["error"] == "token has expired; get a fresh one"
    acl = {"password": expired, "topic": TWIN_EVENT, "acc": 2}
    assert (await client.post("/mqtt/acl", json=acl)).status_code == 403


async def test_no_issuer_configured_refuses_tokens(tmp_path: Path, key: IssuerKey) -> None:
    app = create_app(
        Settings(
            site_id="a",
            mqtt_enabled=False,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'a.db'}",
        )
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://site-a") as http:
        response = await http.post("/mqtt/user", json={"password": token(key)})
    assert response.status_code == 403
    assert "no token issuer configured" in response.json()["error"]
