"""Seed 004 against a running site: tokens from the bench's issuer, the site's go-auth HTTP
endpoints (as Mosquitto's plugin calls them) and its REST API.

The seed's rules and the hostile tokens — expired, not yet valid, signed by another key,
``alg: none``, wrong audience, a viewer publishing, a deny rule beating a group allow — over
HTTP here, with the deny reasons; ``scenarios/policy/policy_jwt.yaml`` plays the same cases
through a real broker. The hostile tokens are spelled out here rather than taken from
``bench.issuer.forge``, so the two cannot share a mistake.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from bench.issuer import IssuerKey, TokenIssuer
from bench.site import RunningBench

R, W, S = 1, 2, 4
TWIN_EVENT = "celine/digital-twin/events/pump/pump-001"
READINGS = "celine/telemetry/meter/meter-001/readings"
CRITICAL = "celine/system/alerts/critical"


@pytest.fixture(scope="module")
def issuer(bench_one: RunningBench) -> TokenIssuer:
    assert bench_one.issuer is not None
    return bench_one.issuer


@pytest.fixture
async def http(bench_one: RunningBench) -> AsyncIterator[httpx.AsyncClient]:
    # No default token: every request here says who it is.
    async with httpx.AsyncClient(base_url=bench_one.site("a").api, timeout=10) as client:
        yield client


async def acl(
    http: httpx.AsyncClient, token: str, topic: str, acc: int, *, form: bool = False
) -> httpx.Response:
    fields: dict[str, Any] = {"username": "", "password": token, "clientid": "c1", "topic": topic}
    if form:
        return await http.post("/mqtt/acl", data={**fields, "acc": str(acc)})
    return await http.post("/mqtt/acl", json={**fields, "acc": acc})


async def login(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.post("/mqtt/user", json={"username": "", "password": token, "clientid": "c"})


async def test_a_client_credentials_token_publishes_digital_twin_events(
    issuer: TokenIssuer, http: httpx.AsyncClient
) -> None:
    # The seed's Keycloak call, against the bench's issuer.
    async with httpx.AsyncClient(timeout=10) as plain:
        answer = await plain.post(
            issuer.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": "svc-digital-twin",
                "client_secret": issuer.secret,
                "scope": "mqtt.write",
            },
        )
        refused = await plain.post(
            issuer.token_url,
            data={"grant_type": "client_credentials", "client_id": "x", "client_secret": "no"},
        )
    assert answer.status_code == 200, answer.text
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    token = answer.json()["access_token"]
    assert (await login(http, token)).status_code == 200
    assert (await acl(http, token, TWIN_EVENT, W)).status_code == 200
    assert (await acl(http, token, TWIN_EVENT, W, form=True)).status_code == 200
    assert (await acl(http, token, "celine/pipelines/status/etl-daily", W)).status_code == 403


async def test_the_seeds_rules_over_http(issuer: TokenIssuer, http: httpx.AsyncClient) -> None:
    admin = issuer.mint(sub="alice", type_="user", groups=["admins"])
    viewer = issuer.mint(sub="victor", type_="user", groups=["viewers"])
    pipelines = issuer.mint(sub="svc-pipelines", scopes=["mqtt.write"])
    cases = [
        (admin, "#", S, 200),
        (admin, TWIN_EVENT, W, 200),
        (viewer, READINGS, S, 200),
        (viewer, READINGS, R, 200),
        (pipelines, "celine/pipelines/status/etl-daily", W, 200),
        (pipelines, "celine/pipelines/events/etl-daily/started", W, 200),
        (pipelines, "celine/nudging/triggers/user-789", W, 403),
    ]
    for token, topic, acc, status in cases:
        response = await acl(http, token, topic, acc)
        assert response.status_code == status, (topic, acc, response.text)
    superuser = await http.post("/mqtt/superuser", json={"username": "alice", "password": admin})
    assert superuser.status_code == 200
    not_super = await http.post("/mqtt/superuser", json={"username": "", "password": viewer})
    assert not_super.status_code == 403


async def test_a_viewer_publishing_is_denied(issuer: TokenIssuer, http: httpx.AsyncClient) -> None:
    viewer = issuer.mint(sub="victor", type_="user", groups=["viewers"])
    response = await acl(http, viewer, READINGS, W)
    assert response.status_code == 403
    assert "holds no 'publish' permission" in response.json()["error"]


async def test_a_deny_rule_beats_a_group_allow(
    issuer: TokenIssuer, http: httpx.AsyncClient
) -> None:
    viewer = issuer.mint(sub="victor", type_="user", groups=["viewers"])
    # viewers may watch celine/system/# ...
    assert (await acl(http, viewer, "celine/system/alerts/warning", S)).status_code == 200
    # ... but the seed's deny on critical alerts wins.
    denied = await acl(http, viewer, CRITICAL, S)
    assert denied.status_code == 403
    assert "seed 004: deny specific topic" in denied.json()["error"]


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def hostile_tokens(issuer: TokenIssuer, tmp_path: Path) -> dict[str, tuple[str, str]]:
    """name -> (token, what the deny must say)."""
    now = time.time()
    stranger = IssuerKey.ensure(tmp_path / "stranger")
    good = issuer.mint(sub="svc-digital-twin", scopes=["mqtt.write"])
    claims = jwt.decode(good, options={"verify_signature": False})
    return {
        "expired": (
            issuer.mint(sub="svc-digital-twin", scopes=["mqtt.write"], now=now - 7200),
            "token has expired",
        ),
        "not yet valid": (
            issuer.mint(sub="svc-digital-twin", scopes=["mqtt.write"], now=now + 3600),
            "not valid yet",
        ),
        "signed by another key": (
            stranger.mint(issuer=issuer.issuer, sub="svc-digital-twin", scopes=["mqtt.write"]),
            "is not in the issuer's JWKS",
        ),
        "another key under our kid": (
            jwt.encode(claims, stranger.private_key, "ES256", {"kid": issuer.key.kid}),
            "signature does not verify",
        ),
        "alg none": (f"{_b64({'alg': 'none', 'kid': issuer.key.kid})}.{_b64(claims)}.", "'none'"),
        "wrong audience": (
            issuer.mint(sub="svc-digital-twin", scopes=["mqtt.write"], audience="another-app"),
            "aud must include 'aurora-bench'",
        ),
    }


async def test_hostile_tokens_are_refused_everywhere(
    issuer: TokenIssuer, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    for name, (token, reason) in hostile_tokens(issuer, tmp_path).items():
        user = await login(http, token)
        assert user.status_code == 403, (name, user.text)
        assert reason in user.json()["error"], (name, user.json())
        assert (await acl(http, token, TWIN_EVENT, W)).status_code == 403, name
        bearer = {"Authorization": f"Bearer {token}"}
        api = await http.get("/api/v1/cps/devices", headers=bearer)
        assert api.status_code == 401, (name, api.text)
        assert reason in api.json()["error"], (name, api.json())


async def test_the_rest_api_wants_a_token_with_the_right_scope(
    bench_one: RunningBench, issuer: TokenIssuer, http: httpx.AsyncClient
) -> None:
    grants = "/api/v1/cps/access/grants"
    missing = await http.post(grants, json={"uid": "0455AF21", "device_ids": ["*"]})
    assert missing.status_code == 401
    assert "aurora-bench token" in missing.json()["error"]
    operate = {"Authorization": f"Bearer {issuer.mint(sub='op', scopes=['aurora.operate'])}"}
    forbidden = await http.post(
        grants, json={"uid": "0455AF21", "device_ids": ["*"]}, headers=operate
    )
    assert forbidden.status_code == 403
    assert "needs scope aurora.admin" in forbidden.json()["error"]
    assert (await http.get(grants)).status_code == 401
    assert (await http.get(grants, headers=operate)).status_code == 200
    # The operator token bench.json carries may do everything.
    async with bench_one.site("a").api_client(timeout=10) as operator:
        created = await operator.post(grants, json={"uid": "0455AF21", "device_ids": ["*"]})
        assert created.status_code == 201
        assert (await operator.delete(f"{grants}/{created.json()['id']}")).status_code == 204
    assert (await http.get("/healthz")).status_code == 200
    assert (await http.get("/metrics")).status_code == 200


async def test_certificate_identities_still_decide_without_tokens(http: httpx.AsyncClient) -> None:
    door = "stm32f401-door-03"
    own = {"username": door, "clientid": door, "topic": f"aurora/sensors/{door}/status", "acc": W}
    assert (await http.post("/mqtt/acl", json=own)).status_code == 200
    other = {**own, "topic": "aurora/sensors/esp32s3-env-01/status"}
    assert (await http.post("/mqtt/acl", json=other)).status_code == 403
    # A bare name never logs in: /mqtt/user wants a token.
    assert (
        await http.post("/mqtt/user", json={"username": door, "password": ""})
    ).status_code == 403
