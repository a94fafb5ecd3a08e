"""The four simulated boards (issue 3) and the registry fleet specs name them by.

=====================  ==========================  ============  ============================
kind                   device_type                 board_family  what it does
=====================  ==========================  ============  ============================
esp32s3-env            environmental_presence      esp32s3       AHT21B + PIR telemetry
stm32f401-access       access_control_node         stm32f401     PN532 badge reads
stm32f401-door         access_control_node         stm32f401     PN532 + solenoid lock
nrf52840-sentinel      environmental_sentinel      nrf52840      duty-cycled, CR2032 cell
=====================  ==========================  ============  ============================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from backend.contract import BadgeEvent, CommandMessage, CommandVerb, Severity
from simulators.battery import (
    Battery,
    CoinCell,
    Radio,
    Transport,
    exchange_for,
    http_exchange,
    mqtt_exchange,
)
from simulators.lock import DoorLock, LockState
from simulators.node import BoardInfo, Node, NodeConfig, SimProcess
from simulators.outbox import Outgoing
from simulators.physics import Climate, Occupancy, next_arrival_s, read_aht21b

# ---------------------------------------------------------------------------- ESP32-S3


@dataclass(frozen=True, slots=True)
class EnvPresenceConfig(NodeConfig):
    """ESP32-S3 environmental + presence node."""

    reading_interval_s: float = 10.0
    climate: Climate = field(default_factory=Climate)
    occupancy: Occupancy = field(default_factory=Occupancy)
    timeout_probability: float = 0.0
    unhealthy_after: int = 3


class EnvPresenceNode(Node):
    """AHT21B temperature/humidity and a PIR; ``sensor_unhealthy`` after repeated timeouts."""

    board = BoardInfo("esp32s3-env", "environmental_presence", "esp32s3")
    config_type = EnvPresenceConfig
    config: EnvPresenceConfig

    def init_board(self) -> None:
        super().init_board()
        self.sensor_timeouts = 0
        self.consecutive_timeouts = 0
        self.unhealthy = False
        self.arrivals = 0
        self.occupied = False

    def behaviour(self) -> None:
        self.env.process(self._climate())
        self.env.process(self._presence())

    def _climate(self) -> SimProcess:
        cfg = self.config
        while self.powered:
            yield self.env.timeout(cfg.reading_interval_s)
            timed_out = self.sensor_failed or (
                cfg.timeout_probability > 0 and self.rng.random() < cfg.timeout_probability
            )
            if timed_out:
                self.sensor_timeouts += 1
                self.consecutive_timeouts += 1
                if self.consecutive_timeouts >= cfg.unhealthy_after and not self.unhealthy:
                    self.unhealthy = True
                    # Seed 001's alert example, verbatim.
                    self.send_alert(
                        "sensor_unhealthy",
                        Severity.CRITICAL,
                        "AHT21B unhealthy: repeated sensor timeout",
                    )
                continue
            self.consecutive_timeouts = 0
            self.unhealthy = False
            reading = read_aht21b(cfg.climate, self.time_of_day_s(), self.rng)
            self.send_telemetry("temperature_c", reading.temperature_c, "C")
            self.send_telemetry("humidity_pct", reading.humidity_pct, "%RH")

    def _presence(self) -> SimProcess:
        occ = self.config.occupancy
        last_motion = -1e18
        next_at = float(self.env.now) + next_arrival_s(occ, self.time_of_day_s(), self.rng)
        while self.powered:
            clear_at = last_motion + occ.hold_s
            if self.occupied and clear_at < next_at:
                yield self.env.timeout(clear_at - float(self.env.now))
                self.occupied = False
                self.send_telemetry("presence", 0.0, "bool")
                continue
            yield self.env.timeout(next_at - float(self.env.now))
            self.arrivals += 1
            last_motion = float(self.env.now)
            if not self.occupied:
                self.occupied = True
                self.send_telemetry("presence", 1.0, "bool")
            next_at = float(self.env.now) + next_arrival_s(occ, self.time_of_day_s(), self.rng)


# ---------------------------------------------------------------------------- STM32F401


@dataclass(frozen=True, slots=True)
class AccessConfig(NodeConfig):
    """STM32F401 PN532 reader; background swipes of ``badge_uids`` at ``swipes_per_h``."""

    badge_uids: tuple[str, ...] = ()
    swipes_per_h: float = 0.0


class AccessBenchNode(Node):
    """RFID access bench node: reports every badge the PN532 reads."""

    board = BoardInfo("stm32f401-access", "access_control_node", "stm32f401")
    config_type: ClassVar[type[NodeConfig]] = AccessConfig
    config: AccessConfig

    def init_board(self) -> None:
        super().init_board()
        self.swipes = 0
        self.missed_swipes = 0

    def behaviour(self) -> None:
        if self.config.badge_uids and self.config.swipes_per_h > 0:
            self.env.process(self._background_swipes())

    def swipe(self, uid: str) -> None:
        """Hold badge ``uid`` to the reader (safe from asyncio)."""
        BadgeEvent(device_id=self.device_id, uid=uid, event="badge_read")  # validate now
        self.external(lambda: self._read_badge(uid))

    def _read_badge(self, uid: str) -> None:
        if not self.powered:
            return
        if self.sensor_failed:
            self.missed_swipes += 1
            return
        self.swipes += 1
        self.emit(BadgeEvent(device_id=self.device_id, uid=uid, event="badge_read"), qos=1)

    def _background_swipes(self) -> SimProcess:
        rate_per_s = self.config.swipes_per_h / 3600.0
        while self.powered:
            yield self.env.timeout(self.rng.expovariate(rate_per_s))
            self._read_badge(self.rng.choice(self.config.badge_uids))


@dataclass(frozen=True, slots=True)
class DoorConfig(AccessConfig):
    """STM32F401 door: reader plus solenoid."""

    heartbeat_s: float = 30.0


class DoorNode(AccessBenchNode):
    """PN532 reader plus solenoid lock; opens only on the backend's ``unlock``."""

    board = BoardInfo("stm32f401-door", "access_control_node", "stm32f401")
    config_type = DoorConfig

    def init_board(self) -> None:
        super().init_board()
        self.lock = DoorLock()
        self.lock_history: list[tuple[float, LockState]] = [(float(self.env.now), LockState.LOCKED)]

    @property
    def lock_state(self) -> LockState:
        """LOCKED, UNLOCKED or LOCKDOWN."""
        return self.lock.state

    def on_command(self, command: CommandMessage) -> None:
        before = self.lock.state
        transition = self.lock.apply(command.verb, float(self.env.now), command.duration_s)
        self.record_command(command, transition.applied)
        if command.verb is CommandVerb.KEEPALIVE:
            self.send_status()
            return
        if transition.state is LockState.UNLOCKED and transition.relock_at_s is not None:
            self.env.process(self._relock(transition.generation, transition.relock_at_s))
        self._lock_changed(before)

    def _relock(self, generation: int, at_s: float) -> SimProcess:
        yield self.env.timeout(max(0.0, at_s - float(self.env.now)))
        before = self.lock.state
        if self.lock.relock_due(generation, float(self.env.now)):
            self._lock_changed(before)

    def _lock_changed(self, before: LockState) -> None:
        state = self.lock.state
        if state is before:
            return
        self.lock_history.append((float(self.env.now), state))
        self.send_telemetry("lock_open", 1.0 if state is LockState.UNLOCKED else 0.0, "bool")


# ---------------------------------------------------------------------------- nRF52840


@dataclass(frozen=True, slots=True)
class SentinelConfig(NodeConfig):
    """nRF52840 coin-cell sentinel: wakes every ``interval_s``, sleeps in between."""

    heartbeat_s: float = 3600.0
    interval_s: float = 60.0
    transport: Transport = Transport.MQTT
    keepalive_s: float = 300.0
    cell: CoinCell = field(default_factory=CoinCell)
    radio: Radio = field(default_factory=Radio)
    wake_cpu_s: float = 0.004
    sensor_charge_c: float = 4.0e-6
    climate: Climate = field(default_factory=Climate)


class SentinelNode(Node):
    """Duty-cycled environmental sentinel on a CR2032; browns out when the cell is empty."""

    board = BoardInfo("nrf52840-sentinel", "environmental_sentinel", "nrf52840")
    config_type = SentinelConfig
    config: SentinelConfig

    def init_board(self) -> None:
        super().init_board()
        self.battery = Battery(self.config.cell)
        self.charge_by_item: dict[str, float] = {"sleep": 0.0, "wake": 0.0, "radio": 0.0}
        self.brownout_at_s: float | None = None
        self._accounted_at = float(self.env.now)

    def behaviour(self) -> None:
        self.env.process(self._duty_cycle())

    def _settle_sleep(self) -> None:
        now = float(self.env.now)
        slept = now - self._accounted_at
        self._accounted_at = now
        self._draw("sleep", slept * self.config.radio.sleep_current_a)
        cfg = self.config
        if cfg.transport is Transport.MQTT and cfg.interval_s > cfg.keepalive_s:
            # An idle MQTT session must PINGREQ within every keep-alive period.
            pings = int(slept // cfg.keepalive_s)
            ping = mqtt_exchange("", 0, qos=0)
            self._draw("radio", pings * ping.charge_c(cfg.radio))

    def _draw(self, item: str, charge_c: float) -> None:
        self.charge_by_item[item] += charge_c
        self.battery.drain(charge_c)
        if self.battery.empty and self.powered:
            self._brownout()

    def _brownout(self) -> None:
        self.powered = False
        self.brownout_at_s = float(self.env.now)
        if self.online:
            self.online = False
            self.out.presence(False)

    def send_status(self) -> None:
        if self.sent_total == 0 and self.config.transport is Transport.MQTT:
            # The one TCP + TLS 1.3 handshake of the persistent session.
            self._draw("radio", http_exchange(0).charge_c(self.config.radio))
        super().send_status()

    def transmit(self, message: Outgoing) -> None:
        cfg = self.config
        exchange = exchange_for(cfg.transport, message.topic, len(message.payload), message.qos)
        super().transmit(message)
        self._draw("radio", exchange.charge_c(cfg.radio))

    def _duty_cycle(self) -> SimProcess:
        cfg = self.config
        while self.powered:
            yield self.env.timeout(cfg.interval_s)
            self._settle_sleep()
            if not self.powered:
                return
            self._draw("wake", cfg.wake_cpu_s * cfg.radio.cpu_current_a + cfg.sensor_charge_c)
            if not self.sensor_failed:
                reading = read_aht21b(cfg.climate, self.time_of_day_s(), self.rng)
                self.send_telemetry("temperature_c", reading.temperature_c, "C")
                self.send_telemetry("humidity_pct", reading.humidity_pct, "%RH")
            if self.powered:
                self.send_telemetry("battery_pct", round(self.battery.level_pct, 2), "%")


#: Fleet specs name boards by these keys.
BOARDS: dict[str, type[Node]] = {
    cls.board.kind: cls for cls in (EnvPresenceNode, AccessBenchNode, DoorNode, SentinelNode)
}

__all__ = [
    "BOARDS",
    "AccessBenchNode",
    "AccessConfig",
    "DoorConfig",
    "DoorNode",
    "EnvPresenceConfig",
    "EnvPresenceNode",
    "LockState",
    "SentinelConfig",
    "SentinelNode",
]
