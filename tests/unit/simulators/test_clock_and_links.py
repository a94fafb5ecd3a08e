"""Clock bridge pacing and the runner over the in-memory broker (no servers)."""

import asyncio
import json
import math
import time
import uuid

import pytest
import simpy

from backend.contract import CommandMessage, CommandVerb, MessageKind, encode
from backend.contract.messages import now_rfc3339
from backend.retry import Backoff
from simulators import (
    ClockBridge,
    DoorNode,
    Fault,
    LinkStatus,
    LockState,
    MemoryBroker,
    QueueOutbox,
)
from simulators.errors import FleetSpecError
from simulators.fleet import Fleet
from simulators.fleetspec import load_fleet_spec, parse_fleet_spec
from simulators.links import ReasonCode

FAST = Backoff(initial_s=0.01, max_s=0.05)


async def until(predicate, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.005)


def ticker(env: simpy.Environment, period_s: float, log: list[float]):
    while True:
        yield env.timeout(period_s)
        log.append(env.now)


async def test_accelerated_clock_paces_sim_time_against_the_wall() -> None:
    env = simpy.Environment()
    ticks: list[float] = []
    env.process(ticker(env, 1.0, ticks))
    bridge = ClockBridge(env, speed=50)
    started = time.monotonic()
    await bridge.run(until_s=10)
    elapsed = time.monotonic() - started
    assert ticks == [float(t) for t in range(1, 11)]
    assert 0.18 <= elapsed < 1.0  # 10 sim s at 50x = 0.2 s of wall time


async def test_unpaced_clock_does_not_block_the_loop() -> None:
    env = simpy.Environment()
    ticks: list[float] = []
    env.process(ticker(env, 1.0, ticks))
    beats = 0

    async def heartbeat() -> None:
        nonlocal beats
        while True:
            beats += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(heartbeat())
    await ClockBridge(env, speed=math.inf).run(until_s=50_000)
    task.cancel()
    assert len(ticks) == 50_000
    assert beats > 20, "the bridge yields between batches of steps"


async def test_call_soon_lands_at_the_current_simulated_instant() -> None:
    env = simpy.Environment()
    env.process(ticker(env, 100.0, []))
    bridge = ClockBridge(env, speed=20)
    seen: list[float] = []
    loop = asyncio.get_running_loop()
    started = loop.time()
    task = asyncio.create_task(bridge.run())
    await asyncio.sleep(0.25)  # about 5 simulated seconds, mid-way between ticks
    called = loop.time()
    bridge.call_soon(lambda: seen.append(float(env.now)))
    await until(lambda: bool(seen))
    landed = loop.time()
    task.cancel()
    # Sim time advanced to "now" (not left at the last tick, 0) before the callback ran.
    assert (called - started) * 20 - 1.0 <= seen[0] <= (landed - started) * 20 + 0.1
    assert seen[0] > 3.0


def test_clock_refuses_a_bad_speed() -> None:
    with pytest.raises(ValueError, match="speed"):
        ClockBridge(simpy.Environment(), speed=0)


SPEC = {
    "seed": 3,
    "boards": [
        {"board": "esp32s3-env", "count": 2, "id_pattern": "esp32s3-env-{n:02d}"},
        {"board": "stm32f401-door", "count": 1, "id_pattern": "stm32f401-door-{n:02d}"},
        {"board": "nrf52840-sentinel", "count": 1, "id_pattern": "nrf52840-sentinel-{n:02d}"},
        {"board": "stm32f401-access", "count": 1, "id_pattern": "stm32f401-access-{n:02d}"},
    ],
}


def unlock() -> bytes:
    return encode(
        CommandMessage(
            verb=CommandVerb.UNLOCK,
            request_id=str(uuid.uuid4()),
            issued_at=now_rfc3339(),
            duration_s=2,
        )
    )


async def test_fleet_over_memory_broker_publishes_and_obeys_commands() -> None:
    broker = MemoryBroker()
    spec = parse_fleet_spec(SPEC)
    async with Fleet(spec, link_for=broker.link, speed=20, backoff=FAST) as fleet:
        await fleet.wait_connected(timeout_s=5)
        await until(lambda: len({r.client_id for r in broker.accepted}) == 5)
        door = fleet.door("stm32f401-door-01")
        door.swipe("0455AF21")
        await until(lambda: any(r.topic.endswith("/badge_event") for r in broker.accepted))
        assert door.lock_state is LockState.LOCKED
        assert broker.send_down("stm32f401-door-01", MessageKind.COMMAND, unlock())
        await until(lambda: door.lock_state is LockState.UNLOCKED)
        await until(lambda: door.lock_state is LockState.LOCKED, timeout_s=3)
        assert [c.verb for c in door.commands_received] == [CommandVerb.UNLOCK]
        lines = {line.board: line for line in fleet.lines()}
        assert lines["stm32f401-door"].commands == 1
        assert lines["esp32s3-env"].connected == 2


async def test_impersonation_is_refused_with_135_and_recorded() -> None:
    broker = MemoryBroker()
    spec = parse_fleet_spec(SPEC)
    async with Fleet(spec, link_for=broker.link, speed=20, backoff=FAST) as fleet:
        await fleet.wait_connected(timeout_s=5)
        node = fleet.node("esp32s3-env-01")
        node.inject(Fault.IMPERSONATE, target="stm32f401-door-01")
        await until(lambda: bool(node.publish_refused))
        assert node.publish_refused == [
            ("aurora/sensors/stm32f401-door-01/status", ReasonCode.NOT_AUTHORIZED)
        ]


async def test_offline_fault_fires_the_will_and_the_runner_reconnects_after_a_drop() -> None:
    broker = MemoryBroker()
    spec = parse_fleet_spec(SPEC)
    async with Fleet(spec, link_for=broker.link, speed=20, backoff=FAST) as fleet:
        await fleet.wait_connected(timeout_s=5)
        runner = fleet.runners["esp32s3-env-02"]
        fleet.node("esp32s3-env-02").inject(Fault.OFFLINE, duration_s=20)
        await until(lambda: not broker.connected("esp32s3-env-02"))
        [will] = broker.wills_published
        assert json.loads(will.payload)["device_id"] == "esp32s3-env-02"
        assert runner.status is LinkStatus.OFFLINE
        await until(lambda: broker.connected("esp32s3-env-02"), timeout_s=3)
        broker.drop("esp32s3-env-01")
        await until(lambda: fleet.runners["esp32s3-env-01"].connects == 2)
        assert broker.connected("esp32s3-env-01")


async def test_a_reconnected_node_announces_its_status() -> None:
    broker = MemoryBroker()
    group = {"board": "stm32f401-door", "id_pattern": "d-{n}", "heartbeat_s": 3600}
    spec = parse_fleet_spec({"boards": [group]})
    async with Fleet(spec, link_for=broker.link, speed=20, backoff=FAST) as fleet:
        await fleet.wait_connected(timeout_s=5)
        await until(lambda: len(broker.accepted) == 1)  # the boot status
        broker.drop("d-1")
        await until(lambda: fleet.runners["d-1"].connects == 2)
        # boot status, the will, then the announcement (the heartbeat is 3 wall minutes away)
        await until(lambda: len(broker.accepted) == 3)
        [will] = broker.wills_published
        assert broker.accepted[1] is will
        assert broker.accepted[2].topic == "aurora/sensors/d-1/status"


async def test_connect_failures_back_off_and_are_reported() -> None:
    broker = MemoryBroker()
    broker.refuse_connect.add("stm32f401-access-01")
    spec = parse_fleet_spec(SPEC)
    async with Fleet(spec, link_for=broker.link, speed=20, backoff=FAST) as fleet:
        with pytest.raises(Exception, match=r"stm32f401-access-01 .*connection refused"):
            await fleet.wait_connected(timeout_s=0.3)
        assert fleet.runners["stm32f401-access-01"].connect_failures >= 2
        broker.refuse_connect.clear()
        await fleet.wait_connected(timeout_s=2)


async def test_queue_outbox_drops_oldest_when_full() -> None:
    box = QueueOutbox(max_messages=2)
    from simulators.outbox import Outgoing

    for i in range(3):
        box.put(Outgoing(MessageKind.STATUS, "t", bytes([i]), 1, 0.0, "d"))
    assert box.dropped == 1
    assert (await box.get()).payload == b"\x01"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"boards": [{"board": "toaster", "id_pattern": "t-{n}"}]},
            "unknown board 'toaster'; choose one of esp32s3-env",
        ),
        ({"boards": [{"board": "esp32s3-env", "id_pattern": "x"}]}, "has no {n}"),
        (
            {"boards": [{"board": "esp32s3-env", "id_pattern": "x-{n}", "colour": 1}]},
            "boards[0].esp32s3-env.colour: Extra inputs are not permitted",
        ),
        (
            {"boards": [{"board": "esp32s3-env", "id_pattern": "bad id {n}"}]},
            "boards[0].id_pattern: device id 'bad id 1'",
        ),
        (
            {
                "boards": [
                    {"board": "esp32s3-env", "id_pattern": "e-{n}"},
                    {"board": "stm32f401-door", "id_pattern": "e-{n}"},
                ]
            },
            "also made by boards[0]",
        ),
        (
            {"boards": [{"board": "esp32s3-env", "id_pattern": "e-{n}", "count": -1}]},
            "count: Input should be greater than or equal to 0",
        ),
        ([1, 2], "a fleet spec is a mapping"),
    ],
)
def test_fleet_spec_errors_name_the_field(data: object, message: str) -> None:
    with pytest.raises(FleetSpecError) as caught:
        parse_fleet_spec(data, "spec.yaml")
    assert message in str(caught.value)
    assert str(caught.value).startswith("spec.yaml: ")


def test_fleet_spec_yaml_errors_carry_the_line(tmp_path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text("seed: 1\nboards:\n  - board: [esp32s3-env\n")
    with pytest.raises(FleetSpecError, match=r"f.yaml: line \d+: not valid YAML"):
        load_fleet_spec(path)
    with pytest.raises(FleetSpecError, match="cannot read"):
        load_fleet_spec(tmp_path / "missing.yaml")


async def test_nodes_added_by_hand_run_before_and_after_start() -> None:
    broker = MemoryBroker()
    fleet = Fleet(parse_fleet_spec({"boards": []}), link_for=broker.link, speed=20, backoff=FAST)
    early = DoorNode(fleet.env, "door-early", QueueOutbox())
    assert fleet.add(early, lambda: broker.link("door-early")).backoff is FAST  # the fleet's
    async with fleet:
        late = DoorNode(fleet.env, "door-late", QueueOutbox())
        fleet.add(late, lambda: broker.link("door-late"))
        await fleet.wait_connected(timeout_s=5)
        await until(lambda: {r.client_id for r in broker.accepted} == {"door-early", "door-late"})
        with pytest.raises(Exception, match="already in this fleet"):
            fleet.add(late, lambda: broker.link("door-late"))


async def test_a_loss_reported_twice_does_not_drop_the_new_link() -> None:
    from simulators.outbox import Outgoing

    broker = MemoryBroker()
    spec = parse_fleet_spec({"boards": [{"board": "stm32f401-door", "id_pattern": "d-{n}"}]})
    async with Fleet(spec, link_for=broker.link, speed=20, backoff=FAST) as fleet:
        await fleet.wait_connected(timeout_s=5)
        runner = fleet.runners["d-1"]
        topic = "aurora/sensors/d-1/status"
        status = fleet.node("d-1").status_message().model_dump_json().encode()
        # Queued before the loss report: its publish fails on the dead link (first report),
        # then the runner reconnects and the stale "lost" item arrives (second report).
        runner.outbox.put(Outgoing(MessageKind.STATUS, topic, status, 1, 0.0, "d-1"))
        broker.drop("d-1")
        marker = status.replace(b'"d-1"', b'"d-1" ')
        runner.outbox.put(Outgoing(MessageKind.STATUS, topic, marker, 1, 0.0, "d-1"))
        await until(lambda: any(r.payload == marker for r in broker.accepted))
        assert runner.connects == 2
        assert broker.connected("d-1")
        assert runner.status is LinkStatus.CONNECTED


async def test_same_seed_gives_the_same_fleet_traffic_in_virtual_time() -> None:
    async def traffic(seed: int) -> dict[str, list[bytes]]:
        broker = MemoryBroker()
        spec = parse_fleet_spec({**SPEC, "seed": seed})
        fleet = Fleet(spec, link_for=broker.link, speed=math.inf, backoff=FAST)
        await fleet.start(duration_s=600)
        await fleet.wait_clock()
        await until(lambda: all(len(r.outbox) == 0 for r in fleet.runners.values()))
        await fleet.aclose()
        per_device: dict[str, list[bytes]] = {}
        for record in broker.accepted:
            per_device.setdefault(record.client_id, []).append(record.payload)
        return per_device

    first = await traffic(21)
    assert sum(map(len, first.values())) > 200
    assert first == await traffic(21)
    assert first != await traffic(22)


def test_backoff_grows_to_its_cap_within_the_jitter() -> None:
    import itertools
    import random

    backoff = Backoff(initial_s=0.5, max_s=4.0, factor=2.0, jitter=0.25)
    delays = list(itertools.islice(backoff.delays(random.Random(1)), 8))
    nominal = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert all(0.75 * n <= d <= 1.25 * n for d, n in zip(delays, nominal, strict=True))
    other = list(itertools.islice(backoff.delays(random.Random(2)), 8))
    assert delays != other, "two nodes do not reconnect in lockstep"


def test_simulate_gives_contract_valid_payloads_for_load_generators() -> None:
    from backend.contract import decode_upstream
    from simulators.fleetspec import simulate

    messages = simulate(parse_fleet_spec(SPEC), 300)
    assert {m.device_id for m in messages} == set(parse_fleet_spec(SPEC).device_ids())
    assert [m.at_s for m in messages] == sorted(m.at_s for m in messages)
    for m in messages:
        decode_upstream(m.topic, m.payload)
    assert messages == simulate(parse_fleet_spec(SPEC), 300)
