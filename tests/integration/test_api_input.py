"""Hostile REST input (issue 11.3, 11.4, 11.7): refused with a 422 that names the field, and
nothing stored that could not be read back. A real Redis (the bench's) and a fresh SQLite
file per app, through ``httpx.ASGITransport``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.app import Backend, create_app
from bench.site import RunningBench
from tests.integration.test_api import _client, _settings

ALERT = {"type": "c2_beacon", "severity": "critical", "title": "beacon"}
JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def api(bench_one: RunningBench, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(_settings(bench_one, tmp_path))
    backend: Backend = app.state.backend
    await backend.start()
    client = await _client(app, bench_one)
    try:
        yield client
    finally:
        await client.aclose()
        await backend.aclose()


def nested(depth: int) -> Any:
    value: Any = "x"
    for level in range(depth):
        value = {"k": value} if level % 2 else [value]
    return value


async def alert_count(api: httpx.AsyncClient) -> int:
    response = await api.get("/api/v1/alerts")
    assert response.status_code == 200, response.text
    count: int = response.json()["count"]
    return count


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("details", {"deep": nested(260)}, "nested more than 16 levels"),
        ("iocs", [{"deep": nested(260)}], "nested more than 16 levels"),
        ("details", {"deep": nested(16)}, "nested more than 16 levels"),
        ("details", {"blob": "x" * 20_000}, "limit 16384"),
    ],
    ids=["details-260", "iocs-260", "details-17", "details-oversize"],
)
async def test_free_json_too_deep_or_big_is_refused_and_not_stored(
    api: httpx.AsyncClient, field: str, value: Any, problem: str
) -> None:
    response = await api.post("/api/v1/alerts", json={**ALERT, field: value})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"].startswith(f"invalid request: {field}")
    assert problem in body["error"]
    assert await alert_count(api) == 0  # nothing stored, and the queue still reads


async def test_free_json_within_limits_is_stored_and_read_back(api: httpx.AsyncClient) -> None:
    details = {"deep": nested(14), "score": 0.5}
    created = await api.post("/api/v1/alerts", json={**ALERT, "details": details})
    assert created.status_code == 201, created.text
    (item,) = (await api.get("/api/v1/alerts")).json()["items"]
    assert item["details"] == details


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("field", ["details", "iocs"])
async def test_non_finite_numbers_are_refused(
    api: httpx.AsyncClient, number: str, field: str
) -> None:
    value = f'{{"score": {number}}}' if field == "details" else f'[{{"score": {number}}}]'
    body = json.dumps(ALERT)[:-1] + f', "{field}": {value}}}'
    response = await api.post("/api/v1/alerts", content=body, headers=JSON)
    assert response.status_code == 422, response.text
    assert "send finite numbers only" in response.json()["error"]
    assert await alert_count(api) == 0


async def test_lone_surrogates_are_refused(api: httpx.AsyncClient) -> None:
    body = json.dumps(ALERT)[:-1] + ', "description": "a\\ud800b"}'
    response = await api.post("/api/v1/alerts", content=body, headers=JSON)
    assert response.status_code == 422, response.text
    assert "surrogate" in response.json()["error"]
    assert await alert_count(api) == 0


@pytest.mark.parametrize("since", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00"])
async def test_since_that_overflows_in_utc_is_a_422(api: httpx.AsyncClient, since: str) -> None:
    response = await api.get("/api/v1/alerts", params={"since": since})
    assert response.status_code == 422, response.text
    assert "since" in response.json()["error"]
    assert "outside the representable range" in response.json()["error"]


async def test_since_with_an_offset_is_compared_in_utc(api: httpx.AsyncClient) -> None:
    assert (await api.post("/api/v1/alerts", json=ALERT)).status_code == 201
    before = await api.get("/api/v1/alerts", params={"since": "2000-01-01T00:00:00+14:00"})
    after = await api.get("/api/v1/alerts", params={"since": "9999-12-31T00:00:00Z"})
    assert (before.json()["count"], after.json()["count"]) == (1, 0)


@pytest.mark.parametrize(
    ("headers", "sent"),
    [
        ({"Content-Type": "application/x-www-form-urlencoded"}, "sent as"),
        ({"Content-Type": "text/plain"}, "sent as 'text/plain'"),
        ({}, "without a Content-Type"),
    ],
)
async def test_a_body_without_a_json_content_type_names_the_header(
    api: httpx.AsyncClient, headers: dict[str, str], sent: str
) -> None:
    response = await api.post("/api/v1/alerts", content=json.dumps(ALERT), headers=headers)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert "Content-Type: application/json" in error
    assert sent in error


async def test_an_oversize_body_is_refused_before_parsing(api: httpx.AsyncClient) -> None:
    body = json.dumps({**ALERT, "description": "x" * 300_000})
    response = await api.post("/api/v1/alerts", content=body, headers=JSON)
    assert response.status_code == 413, response.text
    assert "error" in response.json()


async def test_openapi_documents_the_real_error_shape(api: httpx.AsyncClient) -> None:
    schema = (await api.get("/openapi.json")).json()
    error = schema["components"]["schemas"]["HTTPValidationError"]
    assert set(error["properties"]) == {"error", "detail"}
