"""What each simulated board type sends under load: contract-exact payloads and task weights.

Pure and deterministic: a device's readings come from a ``random.Random`` seeded with its id,
so two runs with the same ids send the same payloads. Values stay inside the backend's
default telemetry thresholds (``backend.settings``): load measures ingest, not alert storms.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from backend.contract import (
    BadgeEvent,
    MessageKind,
    StatusMessage,
    TelemetryMessage,
    encode,
    topic_for,
)

#: The badge every load door swipes; ``aurora-bench load`` grants it on every door.
LOAD_BADGE_UID = "10AD0B00"


@dataclass(frozen=True, slots=True)
class Metric:
    """A telemetry metric and the range its load readings are drawn from."""

    name: str
    unit: str
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class BoardProfile:
    """One board type: its identity in ``status`` and the weights of its periodic messages."""

    board_family: str
    device_type: str
    metrics: tuple[Metric, ...]
    #: Relative weights of the periodic tasks (status is always sent once first).
    telemetry_weight: int
    badge_weight: int
    status_weight: int

    def firmware_hash(self) -> str:
        """A fixed measured-boot hash per board family (no drift under load)."""
        return hashlib.sha256(f"aurora-load-{self.board_family}".encode()).hexdigest()


PROFILES: dict[str, BoardProfile] = {
    "esp32s3": BoardProfile(
        board_family="esp32s3",
        device_type="environmental_presence",
        metrics=(
            Metric("temperature_c", "C", 18.0, 26.0),
            Metric("humidity_pct", "%", 30.0, 60.0),
            Metric("presence", "bool", 0.0, 1.0),
        ),
        telemetry_weight=10,
        badge_weight=0,
        status_weight=1,
    ),
    "nrf52840": BoardProfile(
        board_family="nrf52840",
        device_type="environmental_sentinel",
        metrics=(
            Metric("temperature_c", "C", 18.0, 26.0),
            Metric("battery_pct", "%", 40.0, 100.0),
        ),
        telemetry_weight=10,
        badge_weight=0,
        status_weight=1,
    ),
    "stm32f401": BoardProfile(
        board_family="stm32f401",
        device_type="access_control_node",
        metrics=(Metric("temperature_c", "C", 18.0, 26.0),),
        telemetry_weight=2,
        badge_weight=4,
        status_weight=1,
    ),
}


def parse_board_mix(text: str) -> dict[str, int]:
    """``"esp32s3=5,nrf52840=3,stm32f401=2"`` -> weights; raises ValueError saying why."""
    mix: dict[str, int] = {}
    for part in filter(None, (chunk.strip() for chunk in text.split(","))):
        board, sep, weight = part.partition("=")
        board = board.strip()
        if board not in PROFILES:
            raise ValueError(f"unknown board {board!r} (known: {', '.join(sorted(PROFILES))})")
        if not sep:
            mix[board] = 1
            continue
        try:
            mix[board] = int(weight)
        except ValueError:
            raise ValueError(f"weight of {board} must be a whole number, got {weight!r}") from None
        if mix[board] < 0:
            raise ValueError(f"weight of {board} must not be negative")
    if not mix or not any(mix.values()):
        raise ValueError(f"board mix {text!r} selects no board; e.g. 'esp32s3=5,stm32f401=1'")
    return mix


class DeviceTraffic:
    """The messages of one load device, as (kind, topic, payload) triples."""

    def __init__(self, device_id: str, profile: BoardProfile) -> None:
        self.device_id = device_id
        self.profile = profile
        self._random = random.Random(device_id)
        self._status = encode(
            StatusMessage(
                device_type=profile.device_type,
                board_family=profile.board_family,
                firmware_stack="rust_embassy",
                firmware_version="0.1.0",
                device_id=device_id,
                firmware_hash=profile.firmware_hash(),
            )
        )

    def draw(self) -> float:
        """A uniform number in [0, 1) from the device's own seeded generator (QoS mix)."""
        return self._random.random()

    def status(self) -> tuple[MessageKind, str, bytes]:
        """The heartbeat with firmware identity (sent first, then now and then)."""
        return MessageKind.STATUS, topic_for(MessageKind.STATUS, self.device_id), self._status

    def telemetry(self) -> tuple[MessageKind, str, bytes]:
        """One in-range reading of one of the board's metrics."""
        metric = self._random.choice(self.profile.metrics)
        if metric.unit == "bool":
            value = float(self._random.random() < 0.3)
        else:
            value = round(self._random.uniform(metric.low, metric.high), 2)
        payload = encode(
            TelemetryMessage(
                device_id=self.device_id, metric=metric.name, value=value, unit=metric.unit
            )
        )
        return MessageKind.TELEMETRY, topic_for(MessageKind.TELEMETRY, self.device_id), payload

    def badge(self, uid: str = LOAD_BADGE_UID) -> tuple[MessageKind, str, bytes]:
        """A badge read of ``uid`` at this door."""
        payload = encode(BadgeEvent(device_id=self.device_id, uid=uid, event="badge_read"))
        return MessageKind.BADGE_EVENT, topic_for(MessageKind.BADGE_EVENT, self.device_id), payload
