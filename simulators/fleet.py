"""A running fleet: nodes from a spec, one link each, one clock for all.

Link-agnostic: give it ``link_for(device_id) -> DeviceLink`` (MQTT against a site, the
in-memory broker in tests). Use it as an async context manager; it owns its tasks::

    async with Fleet(spec, link_for=broker.link, speed=math.inf) as fleet:
        await fleet.wait_connected(timeout_s=10)
        fleet.door("stm32f401-door-01").swipe("0455AF21")
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self, TypeVar

import simpy

from backend.retry import Backoff
from simulators.boards import AccessBenchNode, DoorNode
from simulators.clock import ClockBridge
from simulators.errors import SimulatorError
from simulators.fleetspec import FleetSpec, build_nodes
from simulators.identity import DeviceIdentity
from simulators.links import DeviceLink, LinkStatus
from simulators.node import Node
from simulators.outbox import QueueOutbox
from simulators.runtime import NodeRunner

N = TypeVar("N", bound=Node)


@dataclass(frozen=True, slots=True)
class BoardLine:
    """One row of the live display: a board type's totals."""

    board: str
    nodes: int
    connected: int
    sent: int
    commands: int
    faults: int
    refused: int

    def render(self) -> str:
        """``esp32s3-env  3/3 connected  sent 120  commands 0  faults 0``."""
        return (
            f"{self.board:<18} {self.connected}/{self.nodes} connected  sent {self.sent:<7} "
            f"commands {self.commands:<4} faults {self.faults:<3} refused {self.refused}"
        )


class Fleet:
    """Nodes built from ``spec``, each served by a :class:`NodeRunner` over its own link."""

    def __init__(
        self,
        spec: FleetSpec,
        *,
        link_for: Callable[[str], DeviceLink],
        identity_for: Callable[[str], DeviceIdentity | None] = lambda _id: None,
        speed: float = 1.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.spec = spec
        self.backoff = backoff or Backoff()
        self.env = simpy.Environment()
        self.bridge = ClockBridge(self.env, speed)
        nodes = build_nodes(spec, self.env, lambda _id: QueueOutbox(), identity_for)
        self.nodes: dict[str, Node] = {node.device_id: node for node in nodes}
        self.runners: dict[str, NodeRunner] = {
            node.device_id: NodeRunner(
                node,
                lambda device_id=node.device_id: link_for(device_id),  # type: ignore[misc]
                self.bridge,
                backoff=self.backoff,
            )
            for node in nodes
        }
        self._tasks: list[asyncio.Task[None]] = []
        self._clock_task: asyncio.Task[None] | None = None

    def add(
        self,
        node: Node,
        link_factory: Callable[[], DeviceLink],
        *,
        backoff: Backoff | None = None,
    ) -> NodeRunner:
        """Add a node built on ``self.env`` with a :class:`QueueOutbox` (e.g. one a scenario
        names by hand), with the fleet's backoff unless ``backoff`` is given. Nodes added
        after :meth:`start` start at once."""
        if node.env is not self.env:
            raise SimulatorError(f"{node.device_id}: build the node on this fleet's env")
        if node.device_id in self.nodes:
            raise SimulatorError(f"{node.device_id} is already in this fleet")
        runner = NodeRunner(node, link_factory, self.bridge, backoff=backoff or self.backoff)
        self.nodes[node.device_id] = node
        self.runners[node.device_id] = runner
        if self._clock_task is not None:
            self._tasks.append(asyncio.create_task(runner.run(), name=f"node:{node.device_id}"))
        return runner

    # -- finding nodes ----------------------------------------------------------------

    def node(self, device_id: str) -> Node:
        """The node with ``device_id`` (clear error listing a few ids otherwise)."""
        try:
            return self.nodes[device_id]
        except KeyError:
            some = ", ".join(list(self.nodes)[:6])
            raise SimulatorError(
                f"no node {device_id!r} in this fleet ({len(self.nodes)} nodes: {some}, ...)"
            ) from None

    def node_as(self, device_id: str, cls: type[N]) -> N:
        """The node, checked to be a ``cls`` (e.g. a DoorNode for lock state)."""
        node = self.node(device_id)
        if not isinstance(node, cls):
            raise SimulatorError(
                f"{device_id} is a {node.board.kind}, not a {cls.__name__} "
                f"(only {cls.__name__} nodes can do this)"
            )
        return node

    def door(self, device_id: str) -> DoorNode:
        """A door node (lock state, swipes, received commands)."""
        return self.node_as(device_id, DoorNode)

    def reader(self, device_id: str) -> AccessBenchNode:
        """A node with a PN532 reader (access bench or door)."""
        return self.node_as(device_id, AccessBenchNode)

    # -- running ----------------------------------------------------------------------

    async def start(self, duration_s: float | None = None) -> None:
        """Start the clock and every runner (returns at once; see :meth:`aclose`)."""
        if self._clock_task is not None:
            return
        # Nodes first: an unpaced clock that found nothing scheduled would end at once.
        for node in self.nodes.values():
            node.start()
        self._clock_task = asyncio.create_task(self.bridge.run(duration_s), name="fleet-clock")
        for device_id, runner in self.runners.items():
            self._tasks.append(asyncio.create_task(runner.run(), name=f"node:{device_id}"))

    async def wait_connected(self, timeout_s: float = 30.0) -> None:
        """Return once every powered, online node is connected; raise SimulatorError after
        ``timeout_s`` naming the nodes that are not (with their last error)."""
        try:
            async with asyncio.timeout(timeout_s):
                for runner in self.runners.values():
                    await runner.connected_event.wait()
        except TimeoutError:
            missing = [
                f"{r.node.device_id} ({r.last_error or r.status.value})"
                for r in self.runners.values()
                if not r.connected_event.is_set()
            ]
            raise SimulatorError(
                f"{len(missing)} nodes not connected after {timeout_s} s: {', '.join(missing[:5])}"
            ) from None

    async def wait_clock(self) -> None:
        """Wait until the clock reaches the duration given to :meth:`start`."""
        if self._clock_task is not None:
            # Shielded: a caller's timeout must not cancel the fleet's clock.
            await asyncio.shield(self._clock_task)

    async def aclose(self) -> None:
        """Stop every runner (graceful DISCONNECT) and the clock; safe to call twice."""
        tasks, self._tasks = self._tasks, []
        clock, self._clock_task = self._clock_task, None
        for task in [*tasks, *([clock] if clock else [])]:
            task.cancel()
        for task in [*tasks, *([clock] if clock else [])]:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- reporting --------------------------------------------------------------------

    def lines(self) -> list[BoardLine]:
        """Totals per board type (the CLI's live lines)."""
        rows: dict[str, list[NodeRunner]] = {}
        for runner in self.runners.values():
            rows.setdefault(runner.node.board.kind, []).append(runner)
        return [
            BoardLine(
                board=kind,
                nodes=len(runners),
                connected=sum(r.status is LinkStatus.CONNECTED for r in runners),
                sent=sum(r.published for r in runners),
                commands=sum(len(r.node.commands_received) for r in runners),
                faults=sum(len(r.node.faults) for r in runners),
                refused=sum(len(r.refusals) for r in runners),
            )
            for kind, runners in rows.items()
        ]

    @property
    def sim_time_s(self) -> float:
        """Simulated seconds since start."""
        return float(self.env.now)
