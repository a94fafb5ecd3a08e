"""The part every simulated board shares: boot, heartbeat, downlink, attestation, faults.

A node is a set of simpy processes. It emits contract messages to an
:class:`~simulators.outbox.Outbox` and reads :class:`~simulators.outbox.Downward` messages
from ``node.inbox`` (a ``simpy.Store``). It knows nothing of MQTT or serial lines.

Methods that other parts of the bench call from asyncio (``deliver``, ``inject``,
``swipe``, ``drift_firmware``) go through ``node.external``: the link runner sets it to
:meth:`simulators.clock.ClockBridge.call_soon`, so the event lands at the right simulated
instant; in a pure simpy test it runs at once.
"""

from __future__ import annotations

import inspect
import random
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import simpy
from pydantic import BaseModel

from backend.contract import (
    AlertMessage,
    AttestationRequest,
    AttestationResponse,
    CommandMessage,
    CommandVerb,
    ContractViolation,
    MessageKind,
    Severity,
    StatusMessage,
    TelemetryMessage,
    decode_payload,
    encode,
    topic_for,
    validate_device_id,
)
from backend.contract.attestation import sign_attestation
from backend.contract.messages import KIND_BY_MODEL
from simulators.errors import FaultError
from simulators.faults import MALFORMED, Fault, InjectedFault, check_fault, impersonated_payload
from simulators.firmware import FirmwareImage, build_image
from simulators.identity import DeviceIdentity
from simulators.outbox import Downward, Outbox, Outgoing

SimProcess = Generator[simpy.Event, Any, None]

#: A fixed wall-clock origin for pure simulations, so runs are reproducible.
SIM_EPOCH_S = 1_767_225_600.0  # 2026-01-01T00:00:00Z

#: A challenge issued this far in the node's future is refused (clock skew, replayed request).
FUTURE_TOLERANCE_S = 300.0


@dataclass(frozen=True, slots=True)
class BoardInfo:
    """What a board says about itself in its status (seed 001 strings)."""

    kind: str
    device_type: str
    board_family: str
    firmware_stack: str = "rust_embassy"


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Settings every board shares (fleet specs fill these)."""

    heartbeat_s: float = 30.0
    firmware_version: str = "0.1.0"
    measured_boot: bool = True
    boot_jitter_s: float = 1.0
    telemetry_qos: int = 1
    start_time_of_day_s: float = 9 * 3600.0


@dataclass(frozen=True, slots=True)
class ReceivedCommand:
    """A lock verb as the node got it; ``applied`` is False when it was ignored."""

    verb: CommandVerb
    request_id: str
    at_s: float
    applied: bool


def _call_now(callback: Callable[[], None]) -> None:
    callback()


class Node:
    """Base of every board model. Subclasses set ``board`` and add ``behaviour``."""

    board: ClassVar[BoardInfo]
    config_type: ClassVar[type[NodeConfig]] = NodeConfig

    def __init__(
        self,
        env: simpy.Environment,
        device_id: str,
        out: Outbox,
        *,
        config: NodeConfig | None = None,
        identity: DeviceIdentity | None = None,
        seed: int = 0,
        inbox: simpy.Store | None = None,
    ) -> None:
        self.env = env
        self.device_id = validate_device_id(device_id)
        self.out = out
        self.config = config or self.config_type()
        if not isinstance(self.config, self.config_type):
            raise TypeError(f"{type(self).__name__} takes a {self.config_type.__name__}")
        self.identity = identity
        # String seeds hash deterministically (unlike hash()), so runs repeat per seed.
        self.rng = random.Random(f"{seed}:{device_id}")
        self.firmware: FirmwareImage = build_image(
            self.board.board_family, self.config.firmware_version
        )
        self.inbox: simpy.Store = inbox if inbox is not None else simpy.Store(env)
        self.external: Callable[[Callable[[], None]], None] = _call_now
        self.wall_clock: Callable[[], float] = lambda: SIM_EPOCH_S + float(self.env.now)
        self.online = True
        self.powered = True
        self.sensor_failed = False
        self.clock_skew_s = 0.0
        self.sent: Counter[str] = Counter()
        self.dropped_offline = 0
        self.commands_received: list[ReceivedCommand] = []
        self.faults: list[InjectedFault] = []
        self.rejected_downlinks: list[str] = []
        self.ignored_challenges = 0
        self.publish_refused: list[tuple[str, int]] = []
        self.attestations: list[AttestationResponse] = []
        self._replay_next = False
        self._beacon: simpy.Process | None = None
        self._started = False
        self.init_board()

    def init_board(self) -> None:
        """Set up the board's own state (boards extend this instead of ``__init__``)."""

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the node's processes (boot, heartbeat, downlink, board behaviour)."""
        if self._started:
            return
        self._started = True
        self.env.process(self._boot())

    def _boot(self) -> SimProcess:
        yield self.env.timeout(self.rng.uniform(0, self.config.boot_jitter_s))
        self.send_status()
        self.env.process(self._heartbeat())
        self.env.process(self._downlink())
        self.behaviour()

    def behaviour(self) -> None:
        """Start the board's own processes (sensors, readers); overridden by boards."""

    def _heartbeat(self) -> SimProcess:
        while self.powered:
            yield self.env.timeout(self.config.heartbeat_s)
            if self.powered:
                self.send_status()

    def time_of_day_s(self) -> float:
        """Local time of day in seconds (drives the daily climate and office hours)."""
        return (self.config.start_time_of_day_s + float(self.env.now)) % 86_400.0

    def local_time(self) -> float:
        """The node's own wall clock (epoch seconds), skew included."""
        return self.wall_clock() + self.clock_skew_s

    # ----------------------------------------------------------------- sending

    def status_message(self) -> StatusMessage:
        """The status this node reports (``firmware_hash`` from measured boot)."""
        return StatusMessage(
            device_type=self.board.device_type,
            board_family=self.board.board_family,
            firmware_stack=self.board.firmware_stack,
            firmware_version=self.firmware.version,
            device_id=self.device_id,
            firmware_hash=self.firmware.sha256 if self.config.measured_boot else None,
        )

    def send_status(self) -> None:
        """Emit a status (boot, heartbeat, keepalive answer, reconnect)."""
        self.emit(self.status_message(), qos=1)

    def send_telemetry(self, metric: str, value: float, unit: str) -> None:
        """Emit one reading."""
        message = TelemetryMessage(device_id=self.device_id, metric=metric, value=value, unit=unit)
        self.emit(message, qos=self.config.telemetry_qos)

    def send_alert(self, alert_type: str, severity: Severity, details: str) -> None:
        """Emit a device-raised alert (QoS 1: alerts matter)."""
        message = AlertMessage(
            device_id=self.device_id, type=alert_type, severity=severity, event_details=details
        )
        self.emit(message, qos=1)

    def emit(self, message: BaseModel, qos: int = 1) -> None:
        """Encode a contract message and hand it to the outbox under this node's topic."""
        kind = KIND_BY_MODEL[type(message)]  # type: ignore[index]
        self.emit_raw(kind, topic_for(kind, self.device_id), encode(message), qos)

    def emit_raw(self, kind: MessageKind | None, topic: str, payload: bytes, qos: int) -> None:
        """Hand bytes to the outbox as they are (faults use this to break the contract)."""
        if not self.powered:
            return
        if not self.online:
            self.dropped_offline += 1
            return
        self.transmit(Outgoing(kind, topic, payload, qos, float(self.env.now), self.device_id))

    def transmit(self, message: Outgoing) -> None:
        """The radio sends ``message`` (the coin-cell board charges its battery here)."""
        self.sent[message.kind.value if message.kind else "other"] += 1
        self.out.put(message)

    @property
    def sent_total(self) -> int:
        """Messages handed to the link so far."""
        return sum(self.sent.values())

    # ----------------------------------------------------------------- receiving

    def deliver(self, kind: MessageKind, payload: bytes) -> None:
        """A downward message arrived from the link (safe from asyncio)."""
        item = Downward(kind, payload)

        def put() -> None:
            self.inbox.put(item)

        self.external(put)

    def _downlink(self) -> SimProcess:
        while self.powered:
            item: Downward = yield self.inbox.get()
            if self.powered:
                self.handle_downward(item)

    def handle_downward(self, item: Downward) -> None:
        """Parse one downward message like the firmware does; bad ones are logged, ignored."""
        try:
            message = decode_payload(item.kind, item.payload)
        except ContractViolation as error:
            self.rejected_downlinks.append(f"{item.kind.value}: {error.one_line()}")
            return
        if isinstance(message, CommandMessage):
            self.on_command(message)
        elif isinstance(message, AttestationRequest):
            self.on_attestation_request(message)

    def on_command(self, command: CommandMessage) -> None:
        """Boards without a lock answer only ``keepalive`` (with a status)."""
        applied = command.verb is CommandVerb.KEEPALIVE
        self.record_command(command, applied)
        if applied:
            self.send_status()

    def record_command(self, command: CommandMessage, applied: bool) -> None:
        """Remember a command (the scenario runner reads ``commands_received``)."""
        self.commands_received.append(
            ReceivedCommand(command.verb, command.request_id, float(self.env.now), applied)
        )

    def on_attestation_request(self, request: AttestationRequest) -> None:
        """Sign ``nonce || firmware_hash`` with the device key, or replay an old answer."""
        if self.identity is None:
            self.rejected_downlinks.append("attestation_request: node has no device key")
            return
        issued = datetime.fromisoformat(request.issued_at).timestamp()
        local = self.local_time()
        if local > issued + request.expires_in_s or local < issued - FUTURE_TOLERANCE_S:
            # A skewed clock makes a fresh challenge look expired (or not yet valid).
            self.ignored_challenges += 1
            return
        if self._replay_next and self.attestations:
            self._replay_next = False
            response = self.attestations[-1]
        else:
            response = sign_attestation(
                self.identity.key,
                self.identity.certificate_pem,
                self.device_id,
                request.nonce,
                self.firmware.sha256,
            )
            self.attestations.append(response)
        self.emit(response, qos=1)

    # ----------------------------------------------------------------- faults

    def inject(self, fault: Fault | str, **params: Any) -> None:
        """Make the node misbehave (see :class:`Fault`); bad parameters raise FaultError.

        Parameters per fault: ``firmware_drift(offset=None, patch=None, reboot=True)``,
        ``sensor_failure(duration_s=None, recover=False)``, ``offline(duration_s=None)``,
        ``online()``, ``clock_skew(skew_s)``, ``malformed_payload(variant="not_json")``
        with variant in not_json, non_finite, unknown_field, wrong_type, oversize,
        ``impersonate(target, kind="status")``, ``replay_attestation(now=False)``,
        ``c2_beacon(interval_s=60.0, count=None, topic=None, stop=False)``.
        """
        try:
            fault = Fault(fault)
        except ValueError:
            known = ", ".join(f.value for f in Fault)
            raise FaultError(f"unknown fault {fault!r}; known: {known}") from None
        handler = getattr(self, f"_fault_{fault.value}")
        try:
            inspect.signature(handler).bind(**params)
        except TypeError as error:
            accepted = ", ".join(inspect.signature(handler).parameters) or "none"
            raise FaultError(f"{fault.value}: {error}; parameters accepted: {accepted}") from None
        self.check_fault(fault, params)

        def apply() -> None:
            self.faults.append(InjectedFault(fault, float(self.env.now), dict(params)))
            handler(**params)

        self.external(apply)

    def check_fault(self, fault: Fault, params: dict[str, Any]) -> None:
        """Refuse, now and with a clear message, a fault that cannot be applied later."""
        check_fault(self.device_id, fault, params, has_attestations=bool(self.attestations))

    def drift_firmware(self, patch: bytes = b"\xde\xad\xbe\xef", offset: int | None = None) -> None:
        """Change the flash image (an implant) and reboot, reporting the new measured hash."""
        self.inject(Fault.FIRMWARE_DRIFT, patch=patch, offset=offset)

    def _fault_firmware_drift(
        self, offset: int | None = None, patch: bytes | None = None, reboot: bool = True
    ) -> None:
        patch = patch or b"\xde\xad\xbe\xef"
        if offset is None:
            offset = self.rng.randrange(256, len(self.firmware.data) - len(patch))
        self.firmware = self.firmware.patched(offset, patch)
        if reboot:
            self.send_status()

    def _fault_sensor_failure(self, duration_s: float | None = None, recover: bool = False) -> None:
        self.sensor_failed = not recover
        if duration_s is not None and not recover:
            self.env.process(self._after(duration_s, lambda: setattr(self, "sensor_failed", False)))

    def _fault_offline(self, duration_s: float | None = None) -> None:
        if self.online:
            self.online = False
            self.out.presence(False)
        if duration_s is not None:
            self.env.process(self._after(duration_s, self._fault_online))

    def _fault_online(self) -> None:
        if not self.online and self.powered:
            self.online = True
            self.out.presence(True)
            self.send_status()

    def _fault_clock_skew(self, skew_s: float) -> None:
        self.clock_skew_s = float(skew_s)

    def _fault_malformed_payload(self, variant: str = "not_json") -> None:
        payload = MALFORMED[variant](self.device_id)
        kind = MessageKind.TELEMETRY
        self.emit_raw(kind, topic_for(kind, self.device_id), payload, 1)

    def _fault_impersonate(self, target: str, kind: str = "status") -> None:
        message_kind = MessageKind(kind)
        own = self.status_message() if message_kind is MessageKind.STATUS else None
        if own is not None:
            payload = encode(own.model_copy(update={"device_id": target}))
        else:
            payload = impersonated_payload(message_kind, target)
        self.emit_raw(message_kind, topic_for(message_kind, target), payload, 1)

    def _fault_replay_attestation(self, now: bool = False) -> None:
        if now and self.attestations:
            self.emit(self.attestations[-1], qos=1)
        else:
            self._replay_next = True

    def _fault_c2_beacon(
        self,
        interval_s: float = 60.0,
        count: int | None = None,
        topic: str | None = None,
        stop: bool = False,
    ) -> None:
        if self._beacon is not None and self._beacon.is_alive:
            self._beacon.interrupt()
            self._beacon = None
        if not stop:
            beacon_topic = topic or f"aurora/sensors/{self.device_id}/beacon"
            self._beacon = self.env.process(self._beacon_loop(interval_s, count, beacon_topic))

    def _beacon_loop(self, interval_s: float, count: int | None, topic: str) -> SimProcess:
        # Jitter-free on purpose: the regular period is what a C2 detector looks for.
        sent = 0
        try:
            while self.powered and (count is None or sent < count):
                self.emit_raw(
                    None, topic, b'{"id":"%s","seq":%d}' % (self.device_id.encode(), sent), 0
                )
                sent += 1
                yield self.env.timeout(interval_s)
        except simpy.Interrupt:
            return

    def _after(self, delay_s: float, action: Callable[[], None]) -> SimProcess:
        yield self.env.timeout(delay_s)
        action()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.device_id}>"
