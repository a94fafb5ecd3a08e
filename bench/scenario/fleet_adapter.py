"""The scenario's fleet: simulated nodes (``simulators``) on their sites' real brokers.

A scenario names each device (``{id: door-01, board: stm32f401-door, site: a}``), so nodes
are built one by one with the board's own config model (the fleet spec's group models check
the ``options``), then served by one :class:`simulators.fleet.Fleet` clock in real time:
time bounds in a scenario are wall seconds.

What the nodes do reaches the timeline without polling the broker: every command a node
receives is recorded the moment it is handled (source ``node``), and door lock changes
are sampled every few milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path
from typing import Any, Protocol

from backend.retry import Backoff
from bench.errors import BenchError
from bench.scenario.loader import node_group
from bench.scenario.schema import NodeSpec, Scenario
from bench.scenario.timeline import EventKind, Timeline
from bench.site import RunningBench
from hardware.emulated import EmulatedDoor
from hardware.emulator import EmulatorSpec
from simulators.boards import BOARDS, DoorNode
from simulators.faults import Fault
from simulators.fleet import Fleet
from simulators.fleetspec import FleetSpec
from simulators.identity import DeviceIdentity
from simulators.mqtt_link import MqttLink
from simulators.node import Node
from simulators.outbox import QueueOutbox
from simulators.runtime import NodeRunner

LOCK_SAMPLE_S = 0.005
#: The emulated firmware's lock lines: `lock: unlocked for 5 s (unlock)`, `lock: lockdown (…)`.
#: The bridge's console prefixes each board line with its time and `[<id>] `.
_LOCK_LINE = re.compile(r"(?:^|\] )lock: (locked|unlocked|lockdown)\b")


def lock_line_state(line: str) -> str | None:
    """The lock state a firmware log line reports, or None (pure)."""
    match = _LOCK_LINE.search(line.strip())
    return match.group(1) if match else None


class ScenarioFleet(Protocol):
    """What the runner needs from a fleet."""

    @property
    def node_devices(self) -> frozenset[str]: ...
    def has(self, device_id: str) -> bool: ...
    def swipe(self, device_id: str, uid: str) -> None: ...
    def fault(self, device_id: str, kind: str, params: dict[str, Any]) -> None: ...
    async def prepare_attestation(self, device_id: str, respond: str) -> None: ...
    async def aclose(self) -> None: ...


class SimulatedFleet:
    """Simulated nodes of a scenario, each with its own mTLS identity and MQTT link."""

    def __init__(self, scenario: Scenario, bench: RunningBench, timeline: Timeline) -> None:
        self._bench = bench
        self._timeline = timeline
        self._fleet = Fleet(FleetSpec(boards=[]), link_for=self._no_link, speed=1.0)
        self._site: dict[str, str] = {}
        self._lock_task: asyncio.Task[None] | None = None
        self._boards: list[tuple[NodeSpec, str]] = []
        self._bridges: list[asyncio.Task[None]] = []
        self._emulated: dict[str, tuple[NodeSpec, str]] = {}
        self._doors: dict[str, EmulatedDoor] = {}
        for spec in scenario.fleet:
            site = spec.site or scenario.first_site
            if spec.emulated is not None:
                self._emulated[spec.id] = (spec, site)
            elif spec.port is not None:
                self._boards.append((spec, site))
            else:
                self._add(spec, site)

    @staticmethod
    def _no_link(device_id: str) -> Any:  # pragma: no cover - every node gets its own
        raise BenchError(f"{device_id}: no link")

    def _add(self, spec: NodeSpec, site: str) -> None:
        pair = self._bench.pki.device(spec.id)
        identity = DeviceIdentity.from_files(spec.id, pair.cert, pair.key)
        config = node_group(spec).node_config()
        assert spec.board is not None  # emulated nodes never get here
        node = BOARDS[spec.board](
            self._fleet.env, spec.id, QueueOutbox(), config=config, identity=identity
        )
        endpoint = self._bench.info.site(site).mqtt
        ca = self._bench.pki.ca_cert

        def link() -> MqttLink:
            return MqttLink.from_files(
                spec.id, endpoint.host, endpoint.port, ca=ca, cert=pair.cert, key=pair.key
            )

        self._fleet.nodes[spec.id] = node
        # Short backoff: scenarios restart brokers and expect nodes back within seconds.
        self._fleet.runners[spec.id] = NodeRunner(
            node, link, self._fleet.bridge, backoff=Backoff(initial_s=0.2, max_s=1.0)
        )
        self._site[spec.id] = site
        self._watch_commands(node, site)

    def _watch_commands(self, node: Node, site: str) -> None:
        # The node records each command it handles; wrap that one public method so the
        # timeline gets the exact moment the device acted on it.
        original = node.record_command

        def record(command: Any, applied: bool) -> None:
            original(command, applied)
            self._timeline.record(
                EventKind.COMMAND,
                "node",
                site=site,
                device=node.device_id,
                verb=command.verb.value,
                applied=applied,
                request_id=command.request_id,
            )

        node.record_command = record  # type: ignore[method-assign]

    async def start(self) -> None:
        """Start the clock and every node; record each door's initial lock state."""
        # Start the nodes before the clock: a clock that finds nothing scheduled sleeps until
        # woken, and a node started later by its runner does not wake it.
        for node in self._fleet.nodes.values():
            node.start()
        await self._fleet.start()
        for spec, site in self._boards:
            self._bridges.append(self._start_bridge(spec, site))
        for spec, site in self._emulated.values():
            await self._start_emulated(spec, site)
        self._lock_task = asyncio.create_task(self._sample_locks(), name="scenario-locks")

    def _start_bridge(self, spec: NodeSpec, site: str) -> asyncio.Task[None]:
        # A real board takes part through the hardware bridge, exactly as with
        # `aurora-bench bridge`: its frames go up with its own certificate, commands come
        # down the line. The runner cannot press its buttons: what it does is observed
        # on the broker, and its log lines go to the timeline.
        from bench.cmd_hardware import make_bridge

        def console(line: str) -> None:
            self._timeline.record(EventKind.NOTE, "board", site=site, device=spec.id, text=line)

        assert spec.port is not None
        try:
            bridge = make_bridge(self._bench.info, site, spec.port, console=console)
        except Exception as error:
            raise BenchError(f"{spec.id}: cannot bridge {spec.port}: {error}") from None
        return asyncio.create_task(bridge.run(), name=f"bridge:{spec.id}")

    async def _start_emulated(self, spec: NodeSpec, site: str) -> None:
        # Real firmware under QEMU, bridged like a USB board (the emulated tier). Its lock
        # changes are the firmware's own `lock: <state>` log lines, so a `lock` expectation
        # reads what the C code did, not what a model thinks.
        from bench.cmd_hardware import make_bridge
        from hardware.emulator import DEFAULT_FIRMWARE, ensure_firmware

        assert spec.emulated is not None
        last: dict[str, str] = {}

        def console(line: str) -> None:
            self._timeline.record(EventKind.NOTE, "board", site=site, device=spec.id, text=line)
            state = lock_line_state(line)
            if state is not None and last.get("state") != state:
                last["state"] = state
                self._timeline.record(
                    EventKind.LOCK, "node", site=site, device=spec.id, state=state
                )

        firmware = Path(spec.emulated.firmware) if spec.emulated.firmware else DEFAULT_FIRMWARE
        try:
            elf = await asyncio.to_thread(ensure_firmware, firmware)
            door = EmulatedDoor(
                EmulatorSpec(elf, spec.id), self._bench.state_dir / f"qemu-{spec.id}.log"
            )
            await door.start()
        except Exception as error:
            raise BenchError(f"{spec.id}: cannot start the emulated board: {error}") from None
        self._doors[spec.id] = door
        bridge = make_bridge(self._bench.info, site, door.console_port, console=console)
        self._bridges.append(asyncio.create_task(bridge.run(), name=f"bridge:{spec.id}"))
        await bridge.wait_until(lambda stats: stats.port_opens >= 1)
        await door.boot()

    async def _sample_locks(self) -> None:
        doors = {
            device_id: node
            for device_id, node in self._fleet.nodes.items()
            if isinstance(node, DoorNode)
        }
        last: dict[str, str] = {}
        while True:
            for device_id, door in doors.items():
                state = door.lock_state.value
                if last.get(device_id) != state:
                    last[device_id] = state
                    self._timeline.record(
                        EventKind.LOCK, "node", site=self._site[device_id], device=device_id,
                        state=state,
                    )  # fmt: skip
            await asyncio.sleep(LOCK_SAMPLE_S)

    @property
    def node_devices(self) -> frozenset[str]:
        """Devices whose received commands this fleet records."""
        return frozenset(self._fleet.nodes)

    def has(self, device_id: str) -> bool:
        """True for a node of this fleet (simulated or emulated)."""
        return device_id in self._fleet.nodes or device_id in self._doors

    def swipe(self, device_id: str, uid: str) -> None:
        """Present a badge at a reader or door (an emulated one's PN532 reads it)."""
        if device_id in self._doors:
            self._doors[device_id].swipe(uid)
            return
        self._fleet.reader(device_id).swipe(uid)

    def fault(self, device_id: str, kind: str, params: dict[str, Any]) -> None:
        """Inject a fault (names and parameters of :class:`simulators.faults.Fault`)."""
        try:
            self._fleet.node(device_id).inject(kind, **params)
        except Exception as error:
            raise BenchError(f"{device_id}: {error}") from None

    async def prepare_attestation(self, device_id: str, respond: str) -> None:
        """Make the node answer the next challenge the way ``respond`` says."""
        node = self._fleet.node(device_id)
        if respond == "tampered":
            # The flash changes without a reboot: the status baseline stays, the measured
            # hash in the attestation differs from it.
            node.inject(Fault.FIRMWARE_DRIFT, reboot=False)
        elif respond == "expired_cert":
            pair = await asyncio.to_thread(self._bench.pki.device_variant, device_id, "expired")
            node.identity = DeviceIdentity.from_files(device_id, pair.cert, pair.key)
        elif respond == "replay":
            node.inject(Fault.REPLAY_ATTESTATION)
        elif respond == "silent":
            node.inject(Fault.CLOCK_SKEW, skew_s=86_400.0)

    async def wait_connected(self, timeout_s: float) -> None:
        """Every node connected to its broker."""
        try:
            await self._fleet.wait_connected(timeout_s=timeout_s)
        except Exception as error:
            raise BenchError(str(error)) from None

    async def aclose(self) -> None:
        """Stop every node, bridge and the clock (safe twice)."""
        task, self._lock_task = self._lock_task, None
        bridges, self._bridges = self._bridges, []
        for running in [*bridges, *([task] if task else [])]:
            running.cancel()
        for running in [*bridges, *([task] if task else [])]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await running
        doors, self._doors = self._doors, {}
        for door in doors.values():
            await door.aclose()
        await self._fleet.aclose()


async def start_fleet(
    scenario: Scenario, bench: RunningBench, timeline: Timeline
) -> SimulatedFleet:
    """Build and start the scenario's fleet; returns once every node is connected."""
    fleet = SimulatedFleet(scenario, bench, timeline)
    await fleet.start()
    try:
        await fleet.wait_connected(timeout_s=15.0)
    except BaseException:
        await fleet.aclose()
        raise
    return fleet
