"""Simulated boards (simpy models), their links to a site, and the clock that drives them.

Layout::

    node.py       Node base: boot, heartbeat, downlink, attestation, applying faults
    faults.py     Fault (what a node can be told to do wrong), its checks and payloads
    tls_sessions.py  TlsSessions: each device's TLS context and ticket, for resumption
    boards.py     EnvPresenceNode, AccessBenchNode, DoorNode, SentinelNode; BOARDS registry
    lock.py       the door's lock state machine (LockState, DoorLock) — pure
    physics.py    AHT21B climate, PIR arrivals — pure
    battery.py    CR2032 + nRF52840 radio cost model, MQTT vs HTTP exchanges — pure
    firmware.py   flash images and their SHA-256
    identity.py   device key + certificate
    outbox.py     Outgoing / Downward and the Outbox the models write to
    clock.py      ClockBridge: simpy stepped from asyncio at a speed factor
    links.py      DeviceLink protocol, MemoryBroker / MemoryLink
    mqtt_link.py  MqttLink (backend.mqtt client, MQTT v5, mTLS)
    runtime.py    NodeRunner: node + link + clock, reconnect with backoff
    fleetspec.py  fleet spec YAML (pydantic) and building nodes from it
    fleet.py      Fleet: nodes + runners + one clock, found by id (door(), reader(), node())
    projection.py battery projection of the coin-cell sentinel (``aurora-bench battery``)

Models import no transport; only links and the runner know both sides.

Exception tree::

    SimulatorError
    ├── FleetSpecError    a fleet spec file is broken (``file: field: what is wrong``)
    ├── FaultError        a fault was asked for with bad parameters
    └── LinkError         a device link could not connect or lost its connection
"""

from backend.retry import Backoff
from simulators.boards import (
    BOARDS,
    AccessBenchNode,
    AccessConfig,
    DoorConfig,
    DoorNode,
    EnvPresenceConfig,
    EnvPresenceNode,
    SentinelConfig,
    SentinelNode,
)
from simulators.clock import ClockBridge
from simulators.errors import FaultError, FleetSpecError, LinkError, SimulatorError
from simulators.faults import Fault
from simulators.fleet import Fleet
from simulators.fleetspec import FleetSpec, build_nodes, load_fleet_spec, parse_fleet_spec
from simulators.identity import DeviceIdentity, self_signed_identity
from simulators.links import DeviceLink, LinkStatus, MemoryBroker, MemoryLink, PublishResult
from simulators.lock import LockState
from simulators.node import Node, NodeConfig, ReceivedCommand
from simulators.outbox import Downward, Outbox, Outgoing, QueueOutbox, RecordingOutbox
from simulators.runtime import NodeRunner

__all__ = [
    "BOARDS",
    "AccessBenchNode",
    "AccessConfig",
    "Backoff",
    "ClockBridge",
    "DeviceIdentity",
    "DeviceLink",
    "DoorConfig",
    "DoorNode",
    "Downward",
    "EnvPresenceConfig",
    "EnvPresenceNode",
    "Fault",
    "FaultError",
    "Fleet",
    "FleetSpec",
    "FleetSpecError",
    "LinkError",
    "LinkStatus",
    "LockState",
    "MemoryBroker",
    "MemoryLink",
    "Node",
    "NodeConfig",
    "NodeRunner",
    "Outbox",
    "Outgoing",
    "PublishResult",
    "QueueOutbox",
    "ReceivedCommand",
    "RecordingOutbox",
    "SentinelConfig",
    "SentinelNode",
    "SimulatorError",
    "build_nodes",
    "load_fleet_spec",
    "parse_fleet_spec",
    "self_signed_identity",
]
