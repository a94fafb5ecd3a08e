"""Fleet specs: how many of each board, their ids, intervals and the seed (YAML, pydantic).

Example (``scenarios/fleets/small.yaml``)::

    seed: 7
    boards:
      - board: esp32s3-env
        count: 2
        id_pattern: "esp32s3-env-{n:02d}"
        reading_interval_s: 10
      - board: stm32f401-door
        count: 2
        id_pattern: "stm32f401-door-{n:02d}"

Unknown keys are refused; every error names the file and the field.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import simpy
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from backend.contract import BADGE_UID_PATTERN, ContractViolation, validate_device_id
from simulators.battery import CoinCell, Transport
from simulators.board_names import board_name_problem
from simulators.boards import (
    BOARDS,
    AccessConfig,
    DoorConfig,
    EnvPresenceConfig,
    SentinelConfig,
)
from simulators.errors import FleetSpecError
from simulators.identity import DeviceIdentity
from simulators.node import Node, NodeConfig
from simulators.outbox import Outbox, Outgoing, RecordingOutbox
from simulators.physics import Occupancy


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    count: Annotated[int, Field(ge=0, le=100_000)] = 1
    id_pattern: str
    start: Annotated[int, Field(ge=0)] = 1
    heartbeat_s: Annotated[float, Field(gt=0)] | None = None
    firmware_version: Annotated[str, Field(min_length=1, max_length=64)] = "0.1.0"
    measured_boot: bool = True
    telemetry_qos: Literal[0, 1] = 1

    @field_validator("id_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            example = value.format(n=1)
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(
                f"id_pattern {value!r} must use only {{n}} (e.g. 'esp32s3-env-{{n:02d}}'): {error}"
            ) from None
        if example == value.format(n=2):
            raise ValueError(f"id_pattern {value!r} has no {{n}}: every device would share one id")
        return value

    def device_ids(self) -> list[str]:
        """The ids of this group's devices."""
        return [self.id_pattern.format(n=n) for n in range(self.start, self.start + self.count)]

    def common(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "firmware_version": self.firmware_version,
            "measured_boot": self.measured_boot,
            "telemetry_qos": self.telemetry_qos,
        }
        if self.heartbeat_s is not None:
            values["heartbeat_s"] = self.heartbeat_s
        return values

    def node_config(self) -> NodeConfig:
        raise NotImplementedError


class EnvGroup(_Group):
    """ESP32-S3 environmental + presence nodes."""

    board: Literal["esp32s3-env"]
    reading_interval_s: Annotated[float, Field(gt=0)] = 10.0
    people_per_hour: Annotated[float, Field(ge=0)] = 12.0
    timeout_probability: Annotated[float, Field(ge=0, le=1)] = 0.0
    unhealthy_after: Annotated[int, Field(ge=1)] = 3

    def node_config(self) -> NodeConfig:
        return EnvPresenceConfig(
            **self.common(),
            reading_interval_s=self.reading_interval_s,
            occupancy=Occupancy(busy_rate_per_h=self.people_per_hour),
            timeout_probability=self.timeout_probability,
            unhealthy_after=self.unhealthy_after,
        )


class AccessGroup(_Group):
    """STM32F401 access bench readers."""

    board: Literal["stm32f401-access"]
    badge_uids: list[Annotated[str, Field(pattern=BADGE_UID_PATTERN)]] = []
    swipes_per_h: Annotated[float, Field(ge=0)] = 0.0
    config_type: ClassVar[type[AccessConfig]] = AccessConfig

    def node_config(self) -> NodeConfig:
        return self.config_type(
            **self.common(), badge_uids=tuple(self.badge_uids), swipes_per_h=self.swipes_per_h
        )


class DoorGroup(AccessGroup):
    """STM32F401 doors."""

    board: Literal["stm32f401-door"]  # type: ignore[assignment]
    config_type = DoorConfig


class SentinelGroup(_Group):
    """nRF52840 coin-cell sentinels."""

    board: Literal["nrf52840-sentinel"]
    interval_s: Annotated[float, Field(gt=0)] = 60.0
    transport: Transport = Transport.MQTT
    capacity_mah: Annotated[float, Field(gt=0)] = 225.0

    def node_config(self) -> NodeConfig:
        return SentinelConfig(
            **self.common(),
            interval_s=self.interval_s,
            transport=self.transport,
            cell=CoinCell(capacity_mah=self.capacity_mah),
        )


Group = Annotated[EnvGroup | AccessGroup | DoorGroup | SentinelGroup, Field(discriminator="board")]


class FleetSpec(BaseModel):
    """A whole fleet: groups of boards and the seed that makes runs repeat."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0
    boards: list[Group]

    def device_ids(self) -> list[str]:
        """Every device id, in spec order."""
        return [device_id for group in self.boards for device_id in group.device_ids()]

    def checked(self, source: str) -> FleetSpec:
        """Check ids are valid device ids and unique; raise FleetSpecError naming the group."""
        seen: dict[str, int] = {}
        for index, group in enumerate(self.boards):
            for device_id in group.device_ids():
                try:
                    validate_device_id(device_id)
                except ContractViolation as error:
                    raise FleetSpecError(
                        source, f"boards[{index}].id_pattern: {error.detail}"
                    ) from None
                if device_id in seen:
                    raise FleetSpecError(
                        source,
                        f"boards[{index}]: device id {device_id!r} also made by "
                        f"boards[{seen[device_id]}]; give the groups different id patterns",
                    )
                seen[device_id] = index
        return self


def parse_fleet_spec(data: object, source: str = "<fleet spec>") -> FleetSpec:
    """Validate an already-loaded mapping."""
    if not isinstance(data, dict):
        raise FleetSpecError(source, "a fleet spec is a mapping with `seed` and `boards`")
    try:
        spec = FleetSpec.model_validate(data)
    except ValidationError as error:
        lines = []
        for item in error.errors(include_url=False):
            where = ".".join(
                f"[{part}]" if isinstance(part, int) else str(part) for part in item["loc"]
            ).replace(".[", "[")
            message = item["msg"]
            if item["type"] == "union_tag_invalid":
                tag = str((item.get("ctx") or {}).get("tag", ""))
                message = board_name_problem(tag) or f"unknown board {tag!r}"
            lines.append(f"{where}: {message}")
        raise FleetSpecError(source, "; ".join(lines)) from None
    return spec.checked(source)


def load_fleet_spec(path: Path | str) -> FleetSpec:
    """Read and validate a fleet spec YAML file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise FleetSpecError(str(path), f"cannot read: {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise FleetSpecError(str(path), f"{where}not valid YAML: {error}") from None
    return parse_fleet_spec(data, str(path))


def build_nodes(
    spec: FleetSpec,
    env: simpy.Environment,
    outbox_for: Callable[[str], Outbox],
    identity_for: Callable[[str], DeviceIdentity | None] = lambda _id: None,
) -> list[Node]:
    """One node per device of ``spec`` (not started), seeded from ``spec.seed``."""
    nodes: list[Node] = []
    for group in spec.boards:
        cls = BOARDS[group.board]
        config = group.node_config()
        for device_id in group.device_ids():
            nodes.append(
                cls(
                    env,
                    device_id,
                    outbox_for(device_id),
                    config=config,
                    identity=identity_for(device_id),
                    seed=spec.seed,
                )
            )
    return nodes


def simulate(spec: FleetSpec, duration_s: float) -> list[Outgoing]:
    """Every message ``spec``'s fleet sends in ``duration_s`` simulated seconds, in order.

    Pure simpy, no links, as fast as the CPU allows: realistic, contract-valid payloads for
    load generators, deterministic per ``spec.seed``.
    """
    env = simpy.Environment()
    out = RecordingOutbox()
    for node in build_nodes(spec, env, lambda _id: out):
        node.start()
    env.run(until=duration_s)
    return out.messages
