"""The go-auth endpoints through the whole app (``create_app``, MQTT disabled, no servers).

The lifespan is not run: the policy service needs neither the database nor Redis, so
these requests prove it answers even while those are down.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from backend.app import create_app
from backend.policy.router import PolicyEndpoints, policy_router
from backend.settings import Settings

BACKEND = "aurora-backend-a"
DOOR = "stm32f401-door-03"
ENV = "esp32s3-env-01"


def site_app(tmp_path: Path) -> FastAPI:
    return create_app(
        Settings(
            site_id="a",
            mqtt_enabled=False,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'a.db'}",
            redis_url="redis://127.0.0.1:1/0",  # never contacted by these endpoints
        )
    )


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = site_app(tmp_path)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://site-a") as http:
        yield http


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    return site_app(tmp_path_factory.mktemp("site"))


def post_now(app: FastAPI, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    """One request on a fresh event loop: hypothesis drives sync tests only."""

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://site-a") as http:
            return await http.post(path, content=body, headers=headers)

    return asyncio.run(post())


async def acl_json(http: httpx.AsyncClient, username: str, topic: str, acc: int) -> httpx.Response:
    body = {"username": username, "clientid": f"{username}-1", "topic": topic, "acc": acc}
    return await http.post("/mqtt/acl", json=body)


async def acl_form(http: httpx.AsyncClient, username: str, topic: str, acc: int) -> httpx.Response:
    body = {"username": username, "clientid": f"{username}-1", "topic": topic, "acc": str(acc)}
    return await http.post("/mqtt/acl", data=body)


ACL_CASES = [
    (DOOR, f"aurora/sensors/{DOOR}/status", 2, True),
    (DOOR, f"aurora/sensors/{ENV}/status", 2, False),
    (DOOR, f"aurora/access/{DOOR}/command", 4, True),
    (DOOR, "aurora/access/+/command", 4, False),
    (DOOR, f"aurora/access/{DOOR}/command", 1, True),
    (BACKEND, "$share/ingest/aurora/sensors/+/telemetry", 4, True),
    (BACKEND, f"aurora/access/{DOOR}/command", 2, True),
    (BACKEND, f"aurora/sensors/{DOOR}/status", 2, False),
    ("bench-probe", "#", 4, True),
    ("dev+", "aurora/sensors/dev+/status", 2, False),
]


@pytest.mark.parametrize(("username", "topic", "acc", "allowed"), ACL_CASES)
@pytest.mark.parametrize("send", [acl_json, acl_form], ids=["json", "form"])
async def test_acl(
    client: httpx.AsyncClient, send: object, username: str, topic: str, acc: int, allowed: bool
) -> None:
    response = await send(client, username, topic, acc)  # type: ignore[operator]
    assert response.status_code == (200 if allowed else 403), response.text
    body = response.json()
    assert body["ok"] is allowed
    assert (body["error"] == "") is allowed


async def test_a_deny_says_why(client: httpx.AsyncClient) -> None:
    response = await acl_json(client, DOOR, f"aurora/sensors/{ENV}/status", 2)
    assert response.json()["error"] == (
        f"no rule allows device '{DOOR}' to publish 'aurora/sensors/{ENV}/status'"
    )


async def test_a_form_topic_with_plus_survives_url_encoding(client: httpx.AsyncClient) -> None:
    # Go's url.Values encodes "+" as %2B; a literal "+" in a form is a space.
    body = urlencode({"username": BACKEND, "clientid": "c", "topic": "aurora/+/x", "acc": "4"})
    assert "%2B" in body
    response = await client.post(
        "/mqtt/acl", content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/mqtt/superuser", "/mqtt/user"])
async def test_superuser_and_user(client: httpx.AsyncClient, path: str) -> None:
    # Without a token /mqtt/user logs nobody in: certificate clients are never asked it,
    # and a listener without client certificates must not accept a bare name.
    expected = {
        BACKEND: 200 if path.endswith("superuser") else 403,
        "aurora-backend-b": 403,
        "bench-probe": 403,
        DOOR: 403,
        "a/b": 403,
        "": 403,
    }
    for username, status in expected.items():
        fields = {"username": username, "password": "", "clientid": "c"}
        as_json = await client.post(path, json=fields)
        as_form = await client.post(path, data=fields)
        assert as_json.status_code == status, (username, as_json.text)
        assert as_form.status_code == status, (username, as_form.text)
        assert as_json.json()["ok"] is (status == 200)


BAD_JSON_BODIES = [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be an object"),
    (b'{"username": "u", "topic": "t", "acc": 1, "password": 5}', "'password' must be a"),
    (b'{"username": 5, "clientid": "c", "topic": "t", "acc": 1}', "must be a string"),
    (b'{"username": "u", "clientid": "c", "acc": 1}', "'topic' is missing"),
    (b'{"username": "u", "clientid": "c", "topic": "t"}', "'acc' is missing"),
    (b'{"username": "u", "clientid": "c", "topic": "t", "acc": "2"}', "must be a JSON number"),
    (b'{"username": "u", "clientid": "c", "topic": "t", "acc": true}', "must be a JSON number"),
    (b'{"username": "u", "clientid": "c", "topic": "t", "acc": 2.5}', "must be a JSON number"),
    (b'{"username": "u", "clientid": "c", "topic": "t", "acc": 8}', "'acc' is 8"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[" * 100_000, "nested too deeply"),
]


BAD_FORMS = [
    ("username=u&clientid=c&topic=t&acc=two", "must be a decimal"),
    ("username=u&clientid=c&topic=t&acc=-1", "must be a decimal"),
    ("username=u&clientid=c&topic=t&acc=" + "1" * 5000, "must be a decimal"),
    ("username=u&clientid=c&topic=t&acc=%D9%A1", "must be a decimal"),  # Arabic-Indic 1
    ("username=u&clientid=c&topic=t&acc=", "must be a decimal"),
    ("username=u&clientid=c&topic=t&acc=0", "'acc' is 0"),
    ("username=u&username=v&clientid=c&topic=t&acc=1", "given twice"),
    ("username=u&clientid=c&acc=1", "'topic' is missing"),
    ("username=u&clientid=c&topic=t&acc=%FF", "cannot be read"),
    ("garbage", "cannot be read"),
]


BAD_BODIES: list[tuple[str, bytes | str, str]] = [
    *(("application/json", body, problem) for body, problem in BAD_JSON_BODIES),
    *(("application/x-www-form-urlencoded", body, problem) for body, problem in BAD_FORMS),
]


@pytest.mark.parametrize(("content_type", "body", "problem"), BAD_BODIES)
async def test_a_malformed_body_is_400_with_a_reason(
    client: httpx.AsyncClient, content_type: str, body: bytes | str, problem: str
) -> None:
    response = await client.post("/mqtt/acl", content=body, headers={"content-type": content_type})
    assert response.status_code == 400, response.text
    assert response.json()["ok"] is False
    assert problem in response.json()["error"]


async def test_unsupported_content_type_and_oversize_body(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/mqtt/user", content=b"<user/>", headers={"content-type": "text/xml"}
    )
    assert response.status_code == 400
    assert "auth_opt_http_params_mode" in response.json()["error"]
    huge = json.dumps({"username": "u", "topic": "a" * 600_000}).encode()
    response = await client.post(
        "/mqtt/user", content=huge, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "larger than" in response.json()["error"]


async def test_no_content_type_is_sniffed(client: httpx.AsyncClient) -> None:
    as_json = await client.post("/mqtt/superuser", content=json.dumps({"username": BACKEND}))
    as_form = await client.post("/mqtt/superuser", content=f"username={BACKEND}")
    assert as_json.status_code == as_form.status_code == 200


async def test_decisions_are_counted_in_metrics(client: httpx.AsyncClient) -> None:
    await acl_json(client, DOOR, f"aurora/sensors/{DOOR}/status", 2)
    await acl_json(client, DOOR, f"aurora/sensors/{ENV}/status", 2)
    await acl_form(client, DOOR, f"aurora/sensors/{ENV}/status", 2)
    await client.post("/mqtt/superuser", json={"username": DOOR})
    await client.post("/mqtt/acl", content=b"{", headers={"content-type": "application/json"})
    text = (await client.get("/metrics")).text
    counts = {
        (sample.labels["check"], sample.labels["result"]): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "aurora_policy_decisions"
        for sample in family.samples
        if sample.name == "aurora_policy_decisions_total"
    }
    assert counts == {
        ("acl", "allow"): 1,
        ("acl", "deny"): 2,
        ("superuser", "deny"): 1,
        ("acl", "bad_request"): 1,
    }


async def test_text_response_mode(client: httpx.AsyncClient) -> None:
    # go-auth's "text" mode accepts only the exact body "ok".
    allowed = await client.post("/mqtt/superuser?response=text", json={"username": BACKEND})
    assert (allowed.status_code, allowed.text) == (200, "ok")
    denied = await client.post("/mqtt/superuser?response=text", json={"username": DOOR})
    assert denied.status_code == 403
    assert denied.text == f"device '{DOOR}' is not a superuser"
    bad = await client.post("/mqtt/acl?response=text", json={"username": DOOR})
    assert bad.status_code == 400
    assert "'topic' is missing" in bad.text


@pytest.mark.parametrize("method", ["GET", "PUT"])
async def test_other_http_methods_go_auth_can_use(client: httpx.AsyncClient, method: str) -> None:
    body = {"username": DOOR, "clientid": "c", "topic": f"aurora/sensors/{DOOR}/status", "acc": 2}
    response = await client.request(method, "/mqtt/acl", json=body)
    assert response.status_code == 200, response.text
    body["topic"] = f"aurora/sensors/{ENV}/status"
    response = await client.request(method, "/mqtt/acl", json=body)
    assert response.status_code == 403


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
_FIELDS = st.dictionaries(
    st.sampled_from(["username", "clientid", "topic", "acc", "password", "other"]),
    _JSON_VALUES,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=st.sampled_from(["/mqtt/user", "/mqtt/superuser", "/mqtt/acl"]),
    content_type=st.sampled_from(
        ["application/json", "application/x-www-form-urlencoded", "", "text/plain"]
    ),
    body=st.one_of(
        st.binary(max_size=64),
        _FIELDS.map(lambda fields: json.dumps(fields).encode()),
        _FIELDS.map(lambda fields: urlencode({k: str(v) for k, v in fields.items()}).encode()),
    ),
)
def test_no_body_gets_a_500(app: FastAPI, path: str, content_type: str, body: bytes) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = post_now(app, path, body, headers)
    assert response.status_code in (200, 400, 403), response.text
    assert isinstance(response.json()["ok"], bool)


PARITY_REQUESTS = [
    ("/mqtt/acl", b'{"username": "%s", "topic": "aurora/sensors/%s/status", "acc": 2}'
     % (DOOR.encode(), DOOR.encode()), "application/json"),
    ("/mqtt/acl", b'{"username": "%s", "topic": "aurora/sensors/x/status", "acc": 2}'
     % DOOR.encode(), "application/json"),
    ("/mqtt/acl?response=text", b"username=%s&topic=a%%2Fb&acc=9" % DOOR.encode(),
     "application/x-www-form-urlencoded"),
    ("/mqtt/superuser", b'{"username": "%s"}' % BACKEND.encode(), ""),
    ("/mqtt/user", b"{", "application/json"),
    ("/mqtt/user", b"x" * 600_000, "application/json"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body", "content_type"), PARITY_REQUESTS)
async def test_the_fast_path_and_the_routes_answer_alike(
    app: FastAPI, path: str, body: bytes, content_type: str
) -> None:
    """The OpenAPI routes and the fast path in front of them are one implementation."""
    routes_only = FastAPI()
    routes_only.include_router(policy_router(PolicyEndpoints(app.state.backend.policy)))
    headers = {"content-type": content_type} if content_type else {}
    answers = []
    for target in (app, routes_only):
        transport = httpx.ASGITransport(app=target)
        async with httpx.AsyncClient(transport=transport, base_url="http://site-a") as http:
            response = await http.post(path, content=body, headers=headers)
        answers.append((response.status_code, response.content, response.headers["content-type"]))
    assert answers[0] == answers[1]
    assert answers[0][0] in (200, 400, 403)


async def test_the_routes_are_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    operations = {
        operation["operationId"]
        for path, methods in schema["paths"].items()
        if path.startswith("/mqtt/")
        for operation in methods.values()
    }
    assert operations == {
        f"mqtt_{check}_{method}"
        for check in ("user", "superuser", "acl")
        for method in ("post", "put", "get")
    }
