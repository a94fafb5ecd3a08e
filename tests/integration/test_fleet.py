"""A fleet of every board type on a real site (Mosquitto mTLS, backend, Redis).

Each node connects with its own certificate from the bench PKI; the backend registers and
trusts them (measured boot), telemetry reaches the Redis telemetry stream, a granted swipe
opens a simulated door through the backend's unlock, a denied one does not, a drifted node
is flagged, attestation verifies and a replayed response fails, impersonation is refused.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from backend.retry import Backoff
from bench.eventually import eventually as _eventually
from bench.fleet import mqtt_fleet
from simulators import Fault, LockState
from simulators.fleet import Fleet
from simulators.fleetspec import parse_fleet_spec
from simulators.links import ReasonCode

#: The shared poll helper with this module's deadline (fleets take a while to boot).
eventually = functools.partial(_eventually, timeout_s=30.0)

pytestmark = pytest.mark.integration

# Ids of our own, so other suites sharing ``bench_one`` never collide with this fleet.
SPEC = {
    "seed": 11,
    "boards": [
        {"board": "esp32s3-env", "count": 2, "id_pattern": "itf-env-{n:02d}"},
        {"board": "stm32f401-access", "count": 1, "id_pattern": "itf-access-{n:02d}"},
        {"board": "stm32f401-door", "count": 2, "id_pattern": "itf-door-{n:02d}"},
        {
            "board": "nrf52840-sentinel",
            "count": 1,
            "id_pattern": "itf-sentinel-{n:02d}",
            "interval_s": 10,
        },
    ],
}
GRANTED = "04A1B2C3D4"
DENIED = "04BADBAD00"


@pytest.fixture
async def site_fleet(bench_one) -> Any:
    """Every board type on site ``a`` of ``bench_one`` (the plugin's ``fleet`` is another)."""
    spec = parse_fleet_spec(SPEC)
    fleet = mqtt_fleet(spec, bench_one.info, bench_one.pki, speed=5, backoff=Backoff(0.2, 2))
    async with fleet:
        await fleet.wait_connected(timeout_s=60)
        yield fleet


@pytest.fixture
async def api(bench_one) -> Any:
    async with bench_one.site("a").api_client(timeout=10) as client:
        yield client


async def device(api: httpx.AsyncClient, device_id: str) -> dict[str, Any] | None:
    response = await api.get(f"/api/v1/cps/devices/{device_id}")
    return response.json() if response.status_code == 200 else None


async def test_every_board_registers_trusted_and_sends_telemetry(
    site_fleet: Fleet, api: httpx.AsyncClient, bench_one
) -> None:
    for device_id, node in site_fleet.nodes.items():
        row = await eventually(lambda d=device_id: device(api, d), f"{device_id} registered")
        assert row["board_family"] == node.board.board_family
        assert row["device_type"] == node.board.device_type
        assert row["trust_status"] == "trusted"
        assert row["firmware_hash"] == node.firmware.sha256

    redis = aioredis.from_url(bench_one.site("a").redis)
    try:

        async def telemetry_from_everyone() -> bool:
            entries = await redis.xrevrange("aurora:cps:telemetry", count=2000)
            text = b" ".join(v for _, fields in entries for v in fields.values())
            return all(
                device_id.encode() in text
                for device_id in ("itf-env-01", "itf-env-02", "itf-sentinel-01")
            )

        await eventually(telemetry_from_everyone, "telemetry of env and sentinel nodes in Redis")
    finally:
        await redis.aclose()


async def test_granted_swipe_opens_the_door_denied_one_does_not(
    site_fleet: Fleet, api: httpx.AsyncClient
) -> None:
    opened, kept_shut = site_fleet.door("itf-door-01"), site_fleet.door("itf-door-02")
    grant = (
        await api.post(
            "/api/v1/cps/access/grants", json={"uid": GRANTED, "device_ids": ["itf-door-01"]}
        )
    ).json()
    try:
        opened.swipe(GRANTED)

        async def unlocked() -> bool:
            return any(state is LockState.UNLOCKED for _, state in opened.lock_history)

        await eventually(unlocked, "itf-door-01 to unlock after a granted swipe")
        assert [c.verb.value for c in opened.commands_received] == ["unlock"]
        # The backend's default duration is 5 s; at speed 5 the door relocks within ~1 s.
        await eventually(lambda: opened.lock_state is LockState.LOCKED, "relock")

        kept_shut.swipe(DENIED)

        async def denied() -> int:
            response = await api.get(
                "/api/v1/alerts", params={"type": "access_denied", "device_id": "itf-door-02"}
            )
            return response.json()["count"]

        await eventually(denied, "an access_denied alert for itf-door-02")
        # Commands on one topic arrive in order: once this keepalive is in, any unlock the
        # backend had sent for the denied swipe would be in too.
        sent = await api.post(
            "/api/v1/cps/devices/itf-door-02/commands", json={"verb": "keepalive"}
        )
        assert sent.status_code == 202
        await eventually(lambda: bool(kept_shut.commands_received), "the keepalive")
        assert [c.verb.value for c in kept_shut.commands_received] == ["keepalive"]
        assert all(state is not LockState.UNLOCKED for _, state in kept_shut.lock_history)
    finally:
        await api.delete(f"/api/v1/cps/access/grants/{grant['id']}")


async def test_drift_is_flagged_and_attestation_verifies_then_replay_fails(
    site_fleet: Fleet, api: httpx.AsyncClient
) -> None:
    await eventually(lambda: device(api, "itf-access-01"), "itf-access-01 registered")
    issued = await api.post("/api/v1/cps/devices/itf-access-01/attestations")
    assert issued.status_code == 202, issued.text

    async def results() -> list[dict[str, Any]]:
        response = await api.get("/api/v1/cps/devices/itf-access-01/attestations")
        return response.json()["items"]

    [verified] = await eventually(results, "an attestation result")
    assert verified["status"] == "verified", verified

    site_fleet.node("itf-access-01").inject(Fault.REPLAY_ATTESTATION)
    await api.post("/api/v1/cps/devices/itf-access-01/attestations")

    async def two_results() -> list[dict[str, Any]]:
        items = await results()
        return items if len(items) >= 2 else []

    newest = (await eventually(two_results, "a second attestation result"))[0]
    assert newest["status"] != "verified", newest

    env = site_fleet.node("itf-env-02")
    env.drift_firmware()

    async def drifted() -> bool:
        row = await device(api, "itf-env-02")
        return bool(row) and row["trust_status"] == "drift_detected"

    await eventually(drifted, "itf-env-02 flagged drift_detected")


async def test_impersonation_is_refused_by_the_broker(site_fleet: Fleet) -> None:
    node = site_fleet.node("itf-env-01")
    node.inject(Fault.IMPERSONATE, target="itf-door-01")

    async def refused() -> bool:
        return bool(node.publish_refused)

    await eventually(refused, "a refused publish")
    assert node.publish_refused == [
        ("aurora/sensors/itf-door-01/status", ReasonCode.NOT_AUTHORIZED)
    ]


async def test_offline_node_leaves_its_last_will_and_comes_back(
    site_fleet: Fleet, bench_one
) -> None:
    from bench.fixtures import probe_client

    runner = site_fleet.runners["itf-env-02"]
    async with probe_client(bench_one) as probe:
        await probe.subscribe("aurora/sensors/itf-env-02/status", qos=1)
        site_fleet.node("itf-env-02").inject(Fault.OFFLINE, duration_s=10)
        async with asyncio.timeout(20):
            async for message in probe.messages:
                props = getattr(message.properties, "UserProperty", None) or []
                if ("aurora-presence", "offline") in props:
                    break
    connects = runner.connects
    await eventually(lambda: runner.connects > connects, "the node to reconnect", timeout_s=20)


def test_fleet_command_runs_a_spec_for_a_duration(bench_one, tmp_path, capsys) -> None:
    from bench.cli import main

    spec = tmp_path / "tiny.yaml"
    spec.write_text(
        "seed: 1\nboards:\n"
        "  - {board: esp32s3-env, count: 2, id_pattern: 'itf-cli-env-{n}'}\n"
        "  - {board: stm32f401-door, count: 1, id_pattern: 'itf-cli-door-{n}'}\n"
    )
    main(["fleet", "--spec", str(spec), "--state-dir", str(bench_one.state_dir),
          "--speed", "10", "--duration", "30"])  # fmt: skip
    out = capsys.readouterr().out
    *_, env_line, door_line, stopped = out.strip().splitlines()
    last = [env_line, door_line]
    assert stopped.startswith("fleet stopped after 30 simulated s")
    assert last[0].startswith("esp32s3-env") and "sent" in last[0]
    sent = int(last[0].split("sent")[1].split()[0])
    assert sent >= 2 * 3, out  # boot status + at least a few readings each in 30 sim s
    assert last[1].startswith("stm32f401-door")


def test_fleet_command_explains_a_bad_spec(bench_one, tmp_path, capsys) -> None:
    from bench.cli import main

    spec = tmp_path / "bad.yaml"
    spec.write_text("boards:\n  - {board: toaster, id_pattern: 'x-{n}'}\n")
    with pytest.raises(SystemExit) as caught:
        main(["fleet", "--spec", str(spec), "--state-dir", str(bench_one.state_dir)])
    assert caught.value.code == 2
    assert "unknown board 'toaster'; choose one of esp32s3-env" in capsys.readouterr().err


async def test_devices_measurement_runs_small(bench_one) -> None:
    from types import SimpleNamespace

    from bench.perf.devices import measure

    ctx = SimpleNamespace(bench=bench_one, info=bench_one.info, pki=bench_one.pki, site_id="a")
    figures = {f.name: f for f in await measure(ctx, devices=20)}
    assert figures["devices.connected_per_process"].value == 20
    assert figures["devices.ramp_rate"].value > 0
    assert "20/20 sample publishes acked" in figures["devices.connected_per_process"].note


async def test_c2_beacon_reaches_the_broker_jitter_free(site_fleet: Fleet, bench_one) -> None:
    from bench.fixtures import probe_client

    node = site_fleet.node("itf-env-01")
    arrivals: list[float] = []
    async with probe_client(bench_one) as probe:
        await probe.subscribe("aurora/sensors/itf-env-01/beacon", qos=0)
        node.inject(Fault.C2_BEACON, interval_s=5, count=4)  # 5 sim s = 1 s at speed 5
        async with asyncio.timeout(20):
            async for _message in probe.messages:
                arrivals.append(asyncio.get_running_loop().time())
                if len(arrivals) == 4:
                    break
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    # Jitter-free in simulated time; at the probe only network and load jitter remain.
    assert 0.85 < sum(gaps) / len(gaps) < 1.15, gaps
    assert all(0.5 < gap < 1.5 for gap in gaps), gaps
    assert not node.publish_refused


async def test_malformed_payload_is_rejected_by_the_backend(
    site_fleet: Fleet, api: httpx.AsyncClient
) -> None:
    site_fleet.node("itf-sentinel-01").inject(Fault.MALFORMED_PAYLOAD, variant="non_finite")

    async def rejected() -> list[dict[str, Any]]:
        response = await api.get(
            "/api/v1/audit", params={"type": "rejected_message", "device_id": "itf-sentinel-01"}
        )
        return response.json()["items"]

    [entry, *_] = await eventually(rejected, "a rejected_message audit entry")
    assert "non_finite" in str(entry)


async def test_nodes_reconnect_after_the_broker_restarts(bench_factory) -> None:
    bench = bench_factory(["a"], backend=False)
    spec = parse_fleet_spec(
        {"boards": [{"board": "stm32f401-door", "count": 2, "id_pattern": "itf-rc-{n}"}]}
    )
    fleet = mqtt_fleet(spec, bench.info, bench.pki, speed=5, backoff=Backoff(0.2, 1))
    async with fleet:
        await fleet.wait_connected(timeout_s=30)
        await asyncio.to_thread(bench.stop_service, "a", "mosquitto")
        await eventually(
            lambda: all(r.connects and not r.connected_event.is_set()
                        for r in fleet.runners.values()),
            "every node to notice the broker is gone",
        )  # fmt: skip
        await asyncio.to_thread(bench.start_service, "a", "mosquitto")
        await fleet.wait_connected(timeout_s=30)
        assert all(r.connects == 2 for r in fleet.runners.values())
        assert all(r.connect_failures >= 1 for r in fleet.runners.values())
