"""The REST API through ``httpx.ASGITransport`` on a real Redis (the bench's) and a fresh
SQLite file per app; MQTT is disabled here (the MQTT paths are in test_ingest.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from backend.alerts import AlertRecord
from backend.app import Backend, create_app
from backend.contract import MessageKind, topic_for
from backend.ingest.consumer import RawMessage
from backend.settings import Settings
from bench.services.process import free_port
from bench.site import RunningBench
from tests.integration.test_ingest import eventually, new_id, status_payload


def _settings(bench: RunningBench, tmp_path: Path, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "site_id": "api",
        "mqtt_enabled": False,
        "redis_url": bench.site("a").redis,
        "database_url": f"sqlite:///{tmp_path / 'api.db'}",
        "mqtt_client_id": new_id("api-test"),
        # The bench's token issuer, so requests carry the bench's operator token.
        **_issuer_settings(bench),
    }
    values.update(changes)
    return Settings(**values)


def _issuer_settings(bench: RunningBench) -> dict[str, Any]:
    assert bench.issuer is not None
    return {"auth_jwks_url": bench.issuer.jwks_url, "auth_issuer": bench.issuer.issuer}


async def _client(app: FastAPI, bench: RunningBench) -> httpx.AsyncClient:
    """A client of ``app`` carrying the bench's operator token (every API scope)."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://site",
        headers=bench.site("a").api_headers(),
    )


@pytest.fixture
async def site(
    bench_one: RunningBench, tmp_path: Path
) -> AsyncIterator[tuple[Backend, httpx.AsyncClient]]:
    app = create_app(_settings(bench_one, tmp_path))
    backend: Backend = app.state.backend
    await backend.start()
    client = await _client(app, bench_one)
    try:
        yield backend, client
    finally:
        await client.aclose()
        await backend.aclose()


async def _register(backend: Backend, device_id: str) -> None:
    await backend.pipeline.process(
        [
            RawMessage(
                topic_for(MessageKind.STATUS, device_id),
                status_payload(device_id, "ab" * 32),
                qos=0,
                mid=0,
                dup=False,
                trace=None,
            )
        ]
    )


async def test_healthz_names_the_missing_dependency(
    bench_one: RunningBench, tmp_path: Path
) -> None:
    dead_port = free_port()  # nothing listens there
    app = create_app(_settings(bench_one, tmp_path, redis_url=f"redis://127.0.0.1:{dead_port}/0"))
    backend: Backend = app.state.backend
    await backend.start()
    try:
        async with await _client(app, bench_one) as client:
            response = await client.get("/healthz")
        assert response.status_code == 503
        body = response.json()
        assert body["error"] == "not connected: redis"
        assert body["detail"]["database"] == "ok"
    finally:
        await backend.aclose()


async def test_healthz_green_when_mqtt_disabled(site: tuple[Backend, httpx.AsyncClient]) -> None:
    _, client = site
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok", "mqtt": "disabled"}


async def test_devices_list_get_and_404(site: tuple[Backend, httpx.AsyncClient]) -> None:
    backend, client = site
    device_id = new_id("stm32f401-door")
    await _register(backend, device_id)
    listing = (await client.get("/api/v1/cps/devices")).json()
    assert [item["device_id"] for item in listing["items"]] == [device_id]
    item = listing["items"][0]
    for key in (
        "device_id",
        "device_type",
        "board_family",
        "firmware_version",
        "firmware_hash",
        "trust_status",
        "attestation_status",
        "risk_score",
        "last_seen",
    ):
        assert key in item
    assert item["trust_status"] == "trusted"
    missing = await client.get("/api/v1/cps/devices/nope")
    assert missing.status_code == 404
    assert "not registered" in missing.json()["error"]


async def test_commands_validate_verb_and_device(site: tuple[Backend, httpx.AsyncClient]) -> None:
    backend, client = site
    device_id = new_id("stm32f401-door")
    bad = await client.post(f"/api/v1/cps/devices/{device_id}/commands", json={"verb": "open"})
    assert bad.status_code == 422
    assert bad.json()["detail"]["allowed"] == [
        "unlock",
        "lock",
        "lockdown",
        "lockdown_clear",
        "keepalive",
    ]
    unknown = await client.post(f"/api/v1/cps/devices/{device_id}/commands", json={"verb": "lock"})
    assert unknown.status_code == 404
    assert device_id in unknown.json()["error"]
    await _register(backend, device_id)
    # MQTT is disabled in this app: a clear 503 instead of a silent drop.
    offline = await client.post(f"/api/v1/cps/devices/{device_id}/commands", json={"verb": "lock"})
    assert offline.status_code == 503
    assert "MQTT" in offline.json()["error"]
    junk = await client.post(f"/api/v1/cps/devices/{device_id}/commands", content=b"{not json")
    assert junk.status_code == 422
    assert junk.json()["error"].startswith("invalid request")


async def test_grants_create_list_delete(site: tuple[Backend, httpx.AsyncClient]) -> None:
    _, client = site
    created = await client.post(
        "/api/v1/cps/access/grants", json={"uid": "0455af21", "device_ids": ["stm32f401-door-03"]}
    )
    assert created.status_code == 201
    grant = created.json()
    assert grant["uid"] == "0455AF21"
    everywhere = await client.post(
        "/api/v1/cps/access/grants", json={"uid": "CAFEBABE", "device_ids": ["*"]}
    )
    assert everywhere.status_code == 201
    listed = (await client.get("/api/v1/cps/access/grants")).json()["items"]
    assert [g["id"] for g in listed] == [grant["id"], everywhere.json()["id"]]
    assert (await client.delete(f"/api/v1/cps/access/grants/{grant['id']}")).status_code == 204
    again = await client.delete(f"/api/v1/cps/access/grants/{grant['id']}")
    assert again.status_code == 404
    assert "no access grant" in again.json()["error"]
    bad = await client.post(
        "/api/v1/cps/access/grants", json={"uid": "xyz", "device_ids": ["door/1"]}
    )
    assert bad.status_code == 422
    fields = {problem["field"] for problem in bad.json()["detail"]}
    assert fields == {"uid", "device_ids"}


async def test_alerts_create_filter_and_order(site: tuple[Backend, httpx.AsyncClient]) -> None:
    backend, client = site
    start = datetime.now(UTC) - timedelta(seconds=1)
    first = await client.post(
        "/api/v1/alerts",
        json={
            "type": "c2_beacon",
            "severity": "critical",
            "title": "Beacon to 203.0.113.7",
            "device_id": "esp32s3-env-01",
            "iocs": [{"type": "ip", "value": "203.0.113.7"}, "evil.example"],
        },
    )
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["source"] == "api"
    assert body["origin_site"] == "api"
    assert body["iocs"][1] == {"value": "evil.example"}
    await backend.alerts.raise_alert("telemetry_anomaly", "medium", "hot", device_id="x")
    items = (await client.get("/api/v1/alerts")).json()["items"]
    assert [i["type"] for i in items] == ["telemetry_anomaly", "c2_beacon"], "newest first"
    for key in ("id", "type", "severity", "source", "origin_site", "created_at"):
        assert key in items[0]
    only = (await client.get("/api/v1/alerts", params={"severity": "critical"})).json()
    assert [i["id"] for i in only["items"]] == [body["id"]]
    assert (await client.get("/api/v1/alerts", params={"source": "cps"})).json()["count"] == 1
    assert (await client.get("/api/v1/alerts", params={"limit": 1})).json()["count"] == 1
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await client.get("/api/v1/alerts", params={"since": later})).json()["count"] == 0
    assert (await client.get("/api/v1/alerts", params={"since": start.isoformat()})).json()[
        "count"
    ] == 2
    # The same instants written with another offset select the same alerts.
    plus_two = timezone(timedelta(hours=2))
    shifted = start.astimezone(plus_two).isoformat()
    assert (await client.get("/api/v1/alerts", params={"since": shifted})).json()["count"] == 2
    ahead = (datetime.now(UTC) + timedelta(minutes=5)).astimezone(plus_two).isoformat()
    assert (await client.get("/api/v1/alerts", params={"since": ahead})).json()["count"] == 0
    bad = await client.post("/api/v1/alerts", json={"type": "x", "severity": "apocalyptic"})
    assert bad.status_code == 422
    assert "severity" in bad.json()["error"]
    # The device-id rule of the contract (no '/', at most 64 characters).
    for device_id in ("door/1", "d" * 65):
        odd = await client.post(
            "/api/v1/alerts",
            json={"type": "x", "severity": "low", "title": "t", "device_id": device_id},
        )
        assert odd.status_code == 422
        assert {problem["field"] for problem in odd.json()["detail"]} == {"device_id"}
    stream = await backend.bus.latest("aurora:cps:alerts", 10)
    assert body["id"] in {entry.data["id"] for entry in stream}


async def test_ingest_remote_is_idempotent_and_observers_do_not_block(
    site: tuple[Backend, httpx.AsyncClient],
) -> None:
    backend, client = site
    release = asyncio.Event()
    observed = asyncio.Event()
    seen: list[AlertRecord] = []

    async def slow_observer(record: AlertRecord) -> None:
        await release.wait()
        seen.append(record)
        observed.set()

    backend.alerts.add_observer(slow_observer)
    async with asyncio.timeout(5):
        record = await backend.alerts.raise_alert("c2_beacon", "high", "local")
    assert seen == [], "raise_alert returned before the observer finished"
    release.set()
    async with asyncio.timeout(5):
        await observed.wait()
    assert seen[0].id == record.id

    # The same alert of peer b, delivered twice.
    peer_alert = {
        "type": "c2_beacon",
        "severity": "critical",
        "title": "from b",
        "origin_site": "b",
        "origin_alert_id": "1234",
        "dedup_key": new_id("b-alert"),
    }
    stored = await backend.alerts.ingest_remote(**peer_alert)
    assert stored is not None
    assert stored.source == "federation:b"
    duplicate = await backend.alerts.ingest_remote(**peer_alert)
    assert duplicate is None
    federated = (await client.get("/api/v1/alerts", params={"source": "federation:b"})).json()
    assert federated["count"] == 1
    assert federated["items"][0]["origin_site"] == "b"
    assert federated["items"][0]["origin_alert_id"] == "1234"
    assert len(seen) == 1, "a peer's alert is not re-announced to observers"


async def test_audit_filters_and_metrics(site: tuple[Backend, httpx.AsyncClient]) -> None:
    backend, client = site
    device_id = new_id("esp32s3-env")
    await _register(backend, device_id)
    await backend.pipeline.process(
        [RawMessage(topic_for(MessageKind.TELEMETRY, device_id), b"[]", 0, 0, False, None)]
    )
    rejected = (
        await client.get(
            "/api/v1/audit", params={"type": "rejected_message", "device_id": device_id}
        )
    ).json()["items"]
    assert len(rejected) == 1
    assert rejected[0]["data"]["reason"] == "not_object"
    statuses = (
        await client.get("/api/v1/audit", params={"type": "device_status", "device_id": device_id})
    ).json()["items"]
    assert statuses[0]["data"]["trust_status"] == "trusted"
    text = (await client.get("/metrics")).text
    assert 'aurora_ingest_rejected_messages_total{reason="not_object"} 1.0' in text
    assert 'aurora_ingest_messages_total{kind="status"} 1.0' in text
    assert "aurora_ingest_handler_seconds_bucket" in text


async def test_two_sites_live_in_one_process(bench_one: RunningBench, tmp_path: Path) -> None:
    apps = [
        create_app(_settings(bench_one, tmp_path / name, site_id=name)) for name in ("s1", "s2")
    ]
    for name in ("s1", "s2"):
        (tmp_path / name).mkdir()
    backends: list[Backend] = [app.state.backend for app in apps]
    for backend in backends:
        await backend.start()
    try:
        for app, name in zip(apps, ("s1", "s2"), strict=True):
            async with await _client(app, bench_one) as client:
                created = await client.post(
                    "/api/v1/alerts", json={"type": "t", "severity": "low", "title": name}
                )
                assert created.json()["origin_site"] == name
                items = (await client.get("/api/v1/alerts")).json()["items"]
                assert [item["title"] for item in items] == [name]
    finally:
        for backend in backends:
            await backend.aclose()


async def test_python_m_backend_serves_healthz_and_stops_cleanly_on_sigterm(
    bench_one: RunningBench, tmp_path: Path
) -> None:
    """A second backend process on site a's services: green /healthz, SIGTERM -> exit 0."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AURORA_")}
    env.update(bench_one.backend_env("a"))
    env.update(
        {
            "AURORA_API_PORT": str(port),
            "AURORA_DATABASE_URL": f"sqlite:///{tmp_path / 'second.db'}",
            # Its own session and share group: it must not take site a's messages.
            "AURORA_MQTT_CLIENT_ID": new_id("second-backend"),
            "AURORA_MQTT_SHARE_GROUP": new_id("second"),
            "AURORA_FEDERATION_ENABLED": "false",
        }
    )
    log = (tmp_path / "backend.log").open("w")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "backend", env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def healthy() -> bool:
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(healthy, "the second backend's /healthz")
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            code = await process.wait()
        # uvicorn re-raises the signal after its graceful shutdown (the Unix convention).
        assert code in (0, -signal.SIGTERM)
        text = (tmp_path / "backend.log").read_text()
        assert "Application shutdown complete" in text
        assert "Traceback" not in text
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        log.close()


async def test_stream_bus_batches_entries_markers_and_odd_fields(bench_one: RunningBench) -> None:
    """add_many: shared data to two streams, traces kept, markers set/unset, NUL fallback."""
    from backend.bus import StreamBus, StreamEntry

    bus = StreamBus(bench_one.site("a").redis, maxlen=1000)
    prefix = new_id("bus")
    one, two, markers = f"{prefix}:one", f"{prefix}:two", f"{prefix}:markers"
    try:
        shared = '{"v":1}'
        await bus.add_many(
            [
                StreamEntry(one, "telemetry", shared, "trace-1"),
                StreamEntry(two, "telemetry", shared, "trace-1"),
                StreamEntry(two, "rejected_message", {"reason": "not_json"}),
            ],
            set_key=markers,
            set_add=["1:aa", "2:bb"],
        )
        first = await bus.scan(one)
        second = await bus.scan(two)
        assert [(e.type, e.data, e.trace) for e in first] == [("telemetry", {"v": 1}, "trace-1")]
        assert [(e.type, e.data, e.trace) for e in second] == [
            ("telemetry", {"v": 1}, "trace-1"),
            ("rejected_message", {"reason": "not_json"}, None),
        ]
        assert await bus.redis.smembers(markers) == {"1:aa", "2:bb"}
        # A NUL inside a field cannot go through the joined script argument: still stored.
        await bus.add_many(
            [StreamEntry(one, "odd", '"a\\u0000b"', "tr\x00ace")],
            set_key=markers,
            set_remove=["1:aa"],
        )
        odd = (await bus.scan(one))[-1]
        assert (odd.type, odd.data, odd.trace) == ("odd", "a\x00b", "tr\x00ace")
        assert await bus.redis.smembers(markers) == {"2:bb"}
        # Consumer groups: create once (idempotent), read, ack.
        await bus.ensure_group(two, "readers")
        await bus.ensure_group(two, "readers")
        read = await bus.read_group(two, "readers", "r1", count=10)
        assert [entry.type for entry in read] == ["telemetry", "rejected_message"]
        assert await bus.ack(two, "readers", *(entry.id for entry in read)) == 2
    finally:
        await bus.redis.delete(one, two, markers)
        await bus.aclose()


async def test_a_failing_handler_is_counted_audited_and_the_batch_goes_on(
    site: tuple[Backend, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    backend, client = site
    device_id = new_id("nrf52840-env")

    async def broken(_response: object) -> None:
        raise RuntimeError("verifier exploded")

    monkeypatch.setattr(backend.attestation, "handle_response", broken)
    response = (
        '{"device_id":"'
        + device_id
        + '","nonce":"'
        + "0" * 32
        + '","firmware_hash":"'
        + "ab" * 32
        + '","signature":"AAAA","certificate":"x"}'
    ).encode()
    after = b'{"device_id":"' + device_id.encode() + b'","metric":"t","value":1,"unit":"C"}'
    await backend.pipeline.process(
        [
            RawMessage(
                topic_for(MessageKind.ATTESTATION_RESPONSE, device_id), response, 1, 7, False, None
            ),
            RawMessage(topic_for(MessageKind.TELEMETRY, device_id), after, 1, 8, False, None),
        ]
    )
    errors = (
        await client.get("/api/v1/audit", params={"type": "handler_error", "device_id": device_id})
    ).json()["items"]
    assert len(errors) == 1
    assert "verifier exploded" in errors[0]["data"]["error"]
    readings = (
        await client.get("/api/v1/audit", params={"type": "telemetry", "device_id": device_id})
    ).json()["items"]
    assert [item["data"]["value"] for item in readings] == [1.0]
    text = (await client.get("/metrics")).text
    assert 'aurora_ingest_handler_errors_total{kind="attestation_response"} 1.0' in text
