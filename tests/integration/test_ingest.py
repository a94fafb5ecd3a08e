"""Seed 001 end to end on a real site: every message type through Mosquitto (mTLS, ACL) into
the backend, checked through the REST API, the Redis streams and what devices receive."""

from __future__ import annotations

import asyncio
import functools
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import aiomqtt
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from redis.asyncio import Redis

from backend.bus import ALERTS_STREAM, TELEMETRY_STREAM
from backend.contract import (
    AttestationRequest,
    CommandMessage,
    MessageKind,
    decode_payload,
    encode,
    topic_for,
)
from backend.contract.attestation import sign_attestation
from bench.eventually import eventually as _eventually
from bench.fixtures import device_client, probe_client
from bench.site import RunningBench

T = TypeVar("T")
DEADLINE_S = 15.0
#: The shared poll helper with this module's deadline.
eventually = functools.partial(_eventually, timeout_s=DEADLINE_S)


# -- helpers shared with the other backend integration tests --------------------------------


def new_id(prefix: str) -> str:
    """A device id no other test uses (the bench is shared by the session)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def status_payload(device_id: str, firmware_hash: str | None = None) -> bytes:
    data: dict[str, Any] = {
        "device_type": "access_control_node",
        "board_family": "stm32f401",
        "firmware_stack": "rust_embassy",
        "firmware_version": "0.1.0",
        "device_id": device_id,
    }
    if firmware_hash is not None:
        data["firmware_hash"] = firmware_hash
    return json.dumps(data, separators=(",", ":")).encode()


def telemetry_payload(device_id: str, value: float, metric: str = "temperature_c") -> bytes:
    return json.dumps(
        {"device_id": device_id, "metric": metric, "value": value, "unit": "C"},
        separators=(",", ":"),
    ).encode()


async def stream_entries(redis: Redis, stream: str, count: int = 20000) -> list[dict[str, Any]]:
    """Every entry of ``stream`` (newest ``count``) with ``data`` decoded."""
    out = []
    for entry_id, fields in await redis.xrevrange(stream, count=count):
        item = dict(fields)
        item["id"] = entry_id
        item["data"] = json.loads(item["data"])
        out.append(item)
    return out


def trace_properties(trace: str) -> Properties:
    properties = Properties(PacketTypes.PUBLISH)
    properties.UserProperty = [("aurora-trace", trace)]
    return properties


@pytest.fixture(scope="session")
async def api(bench_one: RunningBench) -> AsyncIterator[httpx.AsyncClient]:
    async with bench_one.site("a").api_client(timeout=10) as client:
        yield client


@pytest.fixture(scope="session")
async def redis(bench_one: RunningBench) -> AsyncIterator[Redis]:
    client = Redis.from_url(bench_one.site("a").redis, decode_responses=True)
    yield client
    await client.aclose()


async def device_json(api: httpx.AsyncClient, device_id: str) -> dict[str, Any] | None:
    response = await api.get(f"/api/v1/cps/devices/{device_id}")
    return response.json() if response.status_code == 200 else None


async def alerts_of(api: httpx.AsyncClient, device_id: str, type_: str) -> list[dict[str, Any]]:
    response = await api.get("/api/v1/alerts", params={"device_id": device_id, "type": type_})
    response.raise_for_status()
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def audit_of(api: httpx.AsyncClient, device_id: str, type_: str) -> list[dict[str, Any]]:
    response = await api.get("/api/v1/audit", params={"device_id": device_id, "type": type_})
    response.raise_for_status()
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def metric_value(api: httpx.AsyncClient, name: str, **labels: str) -> float:
    """A sample of ``/metrics`` (0 when absent)."""
    text = (await api.get("/metrics")).text
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        if series == (f"{name}{{{wanted}}}" if wanted else name):
            return float(value)
    return 0.0


# -- tests ----------------------------------------------------------------------------------


async def next_downlink(client: aiomqtt.Client, kind: MessageKind) -> object:
    """The next message ``client`` (a device) receives, decoded as ``kind``, within the deadline."""
    async with asyncio.timeout(DEADLINE_S):
        message = await anext(aiter(client.messages))
    assert isinstance(message.payload, bytes)
    return decode_payload(kind, message.payload)


async def test_healthz_is_green_with_everything_connected(api: httpx.AsyncClient) -> None:
    response = await api.get("/healthz")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"database": "ok", "redis": "ok", "mqtt": "ok"}


async def test_status_registers_then_tofu_then_drift(
    bench_one: RunningBench, api: httpx.AsyncClient
) -> None:
    device_id = new_id("stm32f401-door")
    topic = topic_for(MessageKind.STATUS, device_id)
    async with device_client(bench_one, device_id) as client:
        await client.publish(topic, status_payload(device_id), qos=1)
        device = await eventually(lambda: device_json(api, device_id), "auto-registration")
        assert device["trust_status"] == "unknown"
        assert device["board_family"] == "stm32f401"
        assert device["attestation_status"] is None

        await client.publish(topic, status_payload(device_id, "ab" * 32), qos=1)

        async def trusted() -> dict[str, Any] | None:
            found = await device_json(api, device_id)
            return found if found and found["trust_status"] == "trusted" else None

        device = await eventually(trusted, "trust on first use")
        assert device["firmware_hash"] == "ab" * 32
        first_seen_risk = device["risk_score"]

        # Same hash again: still trusted, no alert. Then a different hash: drift.
        await client.publish(topic, status_payload(device_id, "ab" * 32), qos=1)
        await client.publish(topic, status_payload(device_id, "cd" * 32), qos=1)

        async def drifted() -> dict[str, Any] | None:
            found = await device_json(api, device_id)
            return found if found and found["trust_status"] == "drift_detected" else None

        device = await eventually(drifted, "drift detection")
        assert device["firmware_hash"] == "ab" * 32, "the baseline must not move"
        assert device["risk_score"] > first_seen_risk
        alerts = await eventually(
            lambda: alerts_of(api, device_id, "firmware_drift"), "tamper alert"
        )
        assert alerts[0]["severity"] == "high"
        # A heartbeat repeating the drifted hash raises no second alert.
        await client.publish(topic, status_payload(device_id, "cd" * 32), qos=1)
        await client.publish(
            topic_for(MessageKind.TELEMETRY, device_id), telemetry_payload(device_id, 1.0), qos=1
        )
    await eventually(lambda: audit_of(api, device_id, "telemetry"), "the marker reading")
    assert len(await alerts_of(api, device_id, "firmware_drift")) == 1


async def test_telemetry_reaches_streams_with_trace_and_anomaly_alerts(
    bench_one: RunningBench, api: httpx.AsyncClient, redis: Redis
) -> None:
    device_id = new_id("esp32s3-env")
    topic = topic_for(MessageKind.TELEMETRY, device_id)
    async with device_client(bench_one, device_id) as client:
        await client.publish(
            topic,
            telemetry_payload(device_id, -4.25),
            qos=1,
            properties=trace_properties("t-1:7:1700000000000000000"),
        )
        await client.publish(topic, telemetry_payload(device_id, 99.5), qos=1)

    async def both() -> list[dict[str, Any]] | None:
        mine = [
            e
            for e in await stream_entries(redis, TELEMETRY_STREAM, 2000)
            if e["data"]["device_id"] == device_id
        ]
        return mine if len(mine) == 2 else None

    entries = await eventually(both, "two telemetry stream entries")
    by_value = {e["data"]["value"]: e for e in entries}
    assert by_value[-4.25]["type"] == "telemetry"
    assert by_value[-4.25]["trace"] == "t-1:7:1700000000000000000"
    assert "trace" not in by_value[99.5]
    assert by_value[-4.25]["data"] == {
        "device_id": device_id,
        "metric": "temperature_c",
        "value": -4.25,
        "unit": "C",
    }
    audit = await eventually(lambda: audit_of(api, device_id, "telemetry"), "audit")
    assert sorted(item["data"]["value"] for item in audit) == [-4.25, 99.5]
    alerts = await eventually(
        lambda: alerts_of(api, device_id, "telemetry_anomaly"), "anomaly alert"
    )
    assert len(alerts) == 1
    assert alerts[0]["details"]["value"] == 99.5
    # Telemetry registers the device too (last_seen batched).
    device = await eventually(lambda: device_json(api, device_id), "registration")
    assert device["last_seen"] is not None


async def test_device_alert_is_forwarded_verbatim_and_stored(
    bench_one: RunningBench, api: httpx.AsyncClient, redis: Redis
) -> None:
    device_id = new_id("esp32s3-env")
    payload = (
        '{"device_id":"' + device_id + '","type":"sensor_unhealthy","severity":"critical",'
        '"event_details":"AHT21B unhealthy: repeated sensor timeout"}'
    ).encode()
    async with device_client(bench_one, device_id) as client:
        await client.publish(topic_for(MessageKind.ALERTS, device_id), payload, qos=1)
    stored = await eventually(lambda: alerts_of(api, device_id, "sensor_unhealthy"), "alert row")
    assert stored[0]["severity"] == "critical"
    assert stored[0]["source"] == "cps"
    assert stored[0]["origin_site"] == "a"

    async def entry() -> dict[str, Any] | None:
        for item in await stream_entries(redis, ALERTS_STREAM, 500):
            if item["data"].get("device_id") == device_id:
                return item
        return None

    forwarded = await eventually(entry, "alert stream entry")
    assert forwarded["payload"] == payload.decode()
    assert forwarded["type"] == "sensor_unhealthy"


async def test_badge_grant_unlocks_and_denial_alerts(
    bench_one: RunningBench, api: httpx.AsyncClient
) -> None:
    door = new_id("stm32f401-door")
    granted_uid, denied_uid = "0455AF21", "DEADBEEF"
    response = await api.post(
        "/api/v1/cps/access/grants", json={"uid": granted_uid, "device_ids": [door]}
    )
    assert response.status_code == 201, response.text
    grant_id = response.json()["id"]
    badge_topic = topic_for(MessageKind.BADGE_EVENT, door)

    def badge(uid: str) -> bytes:
        return json.dumps({"device_id": door, "uid": uid, "event": "badge_read"}).encode()

    async with device_client(bench_one, door) as client:
        await client.subscribe(topic_for(MessageKind.COMMAND, door), qos=1)
        sent_at = time.monotonic()
        await client.publish(badge_topic, badge(granted_uid), qos=1)
        command = await next_downlink(client, MessageKind.COMMAND)
        latency_s = time.monotonic() - sent_at
        assert isinstance(command, CommandMessage)
        assert command.verb.value == "unlock"
        assert command.duration_s == 5
        assert latency_s < 2.0

        await client.publish(badge_topic, badge(denied_uid), qos=1)
        alerts = await eventually(lambda: alerts_of(api, door, "access_denied"), "denial")
        assert alerts[0]["severity"] == "medium"
        assert denied_uid in alerts[0]["title"]
        # No command for the denied badge (the alert landed after the decision).
        assert len(client.messages) == 0

    async def both_reads() -> list[dict[str, Any]] | None:
        reads = await audit_of(api, door, "badge_read")
        return reads if len(reads) >= 2 else None

    reads = await eventually(both_reads, "badge audit")
    decisions = sorted((r["data"]["uid"], r["data"]["decision"]) for r in reads)
    assert decisions == [(granted_uid, "granted"), (denied_uid, "denied")]
    sent = await audit_of(api, door, "command_sent")
    assert [item["data"]["verb"] for item in sent] == ["unlock"]
    # Routine reads are audit, not alerts: the grant produced no alert.
    assert all(a["type"] == "access_denied" for a in await alerts_of(api, door, "access_denied"))
    assert (await api.delete(f"/api/v1/cps/access/grants/{grant_id}")).status_code == 204
    assert (await api.get(f"/api/v1/cps/devices/{door}")).status_code == 200


async def test_operator_command_reaches_the_door(
    bench_one: RunningBench, api: httpx.AsyncClient
) -> None:
    door = new_id("stm32f401-door")
    async with device_client(bench_one, door) as client:
        await client.publish(topic_for(MessageKind.STATUS, door), status_payload(door), qos=1)
        await eventually(lambda: device_json(api, door), "registration")
        await client.subscribe(topic_for(MessageKind.COMMAND, door), qos=1)
        response = await api.post(f"/api/v1/cps/devices/{door}/commands", json={"verb": "lockdown"})
        assert response.status_code == 202, response.text
        command = await next_downlink(client, MessageKind.COMMAND)
        assert isinstance(command, CommandMessage)
        assert command.verb.value == "lockdown"
        assert command.request_id == response.json()["request_id"]


def _device_key(bench: RunningBench, device_id: str) -> tuple[ec.EllipticCurvePrivateKey, str]:
    pair = bench.pki.device(device_id)
    key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    cert_pem = pair.cert.read_text()
    x509.load_pem_x509_certificate(cert_pem.encode())
    return key, cert_pem


async def _challenge(
    api: httpx.AsyncClient, client: aiomqtt.Client, device_id: str
) -> AttestationRequest:
    response = await api.post(f"/api/v1/cps/devices/{device_id}/attestations")
    assert response.status_code == 202, response.text
    request = await next_downlink(client, MessageKind.ATTESTATION_REQUEST)
    assert isinstance(request, AttestationRequest)
    assert request.nonce == response.json()["nonce"]
    return request


async def test_attestation_verified_failed_and_replayed(
    bench_one: RunningBench, api: httpx.AsyncClient
) -> None:
    device_id = new_id("nrf52840-env")
    baseline = "ab" * 32
    key, cert_pem = _device_key(bench_one, device_id)
    response_topic = topic_for(MessageKind.ATTESTATION_RESPONSE, device_id)

    async def results() -> list[dict[str, Any]]:
        found = await api.get(f"/api/v1/cps/devices/{device_id}/attestations")
        items: list[dict[str, Any]] = found.json()["items"]
        return items

    async def results_count(n: int) -> list[dict[str, Any]] | None:
        items = await results()
        return items if len(items) >= n else None

    async with device_client(bench_one, device_id) as client:
        await client.publish(
            topic_for(MessageKind.STATUS, device_id), status_payload(device_id, baseline), qos=1
        )
        await eventually(lambda: device_json(api, device_id), "registration")
        await client.subscribe(topic_for(MessageKind.ATTESTATION_REQUEST, device_id), qos=1)

        request = await _challenge(api, client, device_id)
        good = sign_attestation(key, cert_pem, device_id, request.nonce, baseline)
        await client.publish(response_topic, encode(good), qos=1)
        items = await eventually(lambda: results_count(1), "verified result")
        assert items[0]["status"] == "verified", items[0]
        device = await device_json(api, device_id)
        assert device is not None
        assert device["attestation_status"] == "verified"
        assert device["risk_score"] == 0

        # The same response again: a replayed nonce.
        await client.publish(response_topic, encode(good), qos=1)
        items = await eventually(lambda: results_count(2), "replay result")
        assert items[0]["status"] == "failed"
        assert "replayed" in items[0]["reason"]

        # A fresh challenge answered with another hash: failed, alert, risk bump.
        request = await _challenge(api, client, device_id)
        bad = sign_attestation(key, cert_pem, device_id, request.nonce, "ee" * 32)
        await client.publish(response_topic, encode(bad), qos=1)
        items = await eventually(lambda: results_count(3), "failed result")
        assert items[0]["status"] == "failed"
        assert "baseline" in items[0]["reason"]

        # A nonce nobody issued: expired.
        stranger = sign_attestation(key, cert_pem, device_id, "0" * 32, baseline)
        await client.publish(response_topic, encode(stranger), qos=1)
        items = await eventually(lambda: results_count(4), "unknown-nonce result")
        assert items[0]["status"] == "expired"

    device = await device_json(api, device_id)
    assert device is not None
    assert device["attestation_status"] == "expired"
    assert device["risk_score"] > 0
    alerts = await alerts_of(api, device_id, "attestation_failed")
    assert len(alerts) == 3
    assert {a["severity"] for a in alerts} == {"critical"}
    audit = await audit_of(api, device_id, "attestation_result")
    assert [a["data"]["status"] for a in audit] == ["expired", "failed", "failed", "verified"]


BAD_INPUTS = [
    # (label, topic template, payload, reason)
    ("not json", "aurora/sensors/{id}/telemetry", b"not json", "not_json"),
    ("not utf-8", "aurora/sensors/{id}/telemetry", b"\xff\xfe", "not_json"),
    ("not an object", "aurora/sensors/{id}/telemetry", b"[1,2]", "not_object"),
    (
        "wrong type",
        "aurora/sensors/{id}/telemetry",
        b'{"device_id":"{id}","metric":"t","value":"hot","unit":"C"}',
        "wrong_type",
    ),
    (
        "NaN",
        "aurora/sensors/{id}/telemetry",
        b'{"device_id":"{id}","metric":"t","value":NaN,"unit":"C"}',
        "non_finite",
    ),
    (
        "Infinity",
        "aurora/sensors/{id}/telemetry",
        b'{"device_id":"{id}","metric":"t","value":Infinity,"unit":"C"}',
        "non_finite",
    ),
    ("oversize", "aurora/sensors/{id}/telemetry", b'{"x":"' + b"a" * 5000 + b'"}', "oversize"),
    (
        "unknown field",
        "aurora/sensors/{id}/telemetry",
        b'{"device_id":"{id}","metric":"t","value":1,"unit":"C","extra":1}',
        "unknown_field",
    ),
    (
        "missing field",
        "aurora/sensors/{id}/telemetry",
        b'{"device_id":"{id}","metric":"t","unit":"C"}',
        "missing_field",
    ),
    (
        "wrong-id payload",
        "aurora/sensors/{id}/telemetry",
        b'{"device_id":"someone-else","metric":"t","value":1,"unit":"C"}',
        "device_id_mismatch",
    ),
    (
        "bad badge event",
        "aurora/access/{id}/badge_event",
        b'{"device_id":"{id}","uid":"0455AF21","event":"door_open"}',
        "bad_value",
    ),
]


async def test_bad_inputs_are_rejected_counted_audited_and_valid_ones_survive(
    bench_one: RunningBench, api: httpx.AsyncClient, redis: Redis
) -> None:
    device_id = new_id("esp32s3-bad")
    before = {
        reason: await metric_value(api, "aurora_ingest_rejected_messages_total", reason=reason)
        for reason in {case[3] for case in BAD_INPUTS} | {"bad_device_id"}
    }
    expected_rejections: dict[str, int] = {}
    sent_values = []
    async with device_client(bench_one, device_id) as client:
        for index, (_, template, payload, reason) in enumerate(BAD_INPUTS):
            await client.publish(
                template.format(id=device_id),
                payload.replace(b"{id}", device_id.encode()),
                qos=1,
            )
            expected_rejections[reason] = expected_rejections.get(reason, 0) + 1
            # A valid reading after every bad message: none may be lost.
            value = float(index)
            sent_values.append(value)
            await client.publish(
                topic_for(MessageKind.TELEMETRY, device_id),
                telemetry_payload(device_id, value),
                qos=1,
            )
    # Ids the device cannot publish under (the ACL pins it): the probe can, the backend must
    # still refuse them by pattern before anything else.
    bad_ids = ["dév-01", "x" * 65]
    async with probe_client(bench_one) as probe:
        for bad_id in bad_ids:
            await probe.publish(
                f"aurora/sensors/{bad_id}/telemetry",
                telemetry_payload(device_id, 1.0),
                qos=1,
            )
            expected_rejections["bad_device_id"] = expected_rejections.get("bad_device_id", 0) + 1
        await probe.publish(
            f"aurora/sensors/{device_id}/telemetry", telemetry_payload(device_id, 1000.0), qos=1
        )
    sent_values.append(1000.0)

    async def all_valid() -> list[float] | None:
        values = sorted(
            e["data"]["value"]
            for e in await stream_entries(redis, TELEMETRY_STREAM, 5000)
            if e["data"]["device_id"] == device_id
        )
        return values if len(values) >= len(sent_values) else None

    values = await eventually(all_valid, "every valid reading")
    assert values == sorted(sent_values)

    async def counted() -> dict[str, float] | None:
        now = {
            reason: await metric_value(api, "aurora_ingest_rejected_messages_total", reason=reason)
            for reason in before
        }
        deltas = {reason: now[reason] - before[reason] for reason in before}
        return deltas if all(deltas[r] >= n for r, n in expected_rejections.items()) else None

    deltas = await eventually(counted, "rejection counters")
    assert {r: int(deltas[r]) for r in expected_rejections} == expected_rejections

    rejected = await audit_of(api, device_id, "rejected_message")
    assert sorted(item["data"]["reason"] for item in rejected) == sorted(
        reason for _, _, _, reason in BAD_INPUTS
    )
    for item in rejected:
        assert item["data"]["detail"]
        assert len(item["data"]["payload"]) <= 300
    audit = (
        await api.get("/api/v1/audit", params={"type": "rejected_message", "limit": 500})
    ).json()
    bad_id_entries = [item for item in audit["items"] if item["data"]["reason"] == "bad_device_id"]
    topics = {item["data"]["topic"] for item in bad_id_entries}
    assert {f"aurora/sensors/{bad_id}/telemetry" for bad_id in bad_ids} <= topics
    assert (await api.get("/healthz")).status_code == 200
