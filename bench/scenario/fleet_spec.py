"""The sites and the fleet of a scenario file: which backend settings a site overrides and
which devices run where (a model, a real board on a serial port, or firmware under QEMU).

Split from :mod:`bench.scenario.schema`, which re-exports these models.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from backend.settings import Settings
from bench.scenario.fields import DeviceId, SiteId, Strict
from simulators.board_names import BoardKind, parse_board

#: Settings the bench owns for every site (ports, URLs, certificates): a scenario may not
#: override them, or the backend would talk to the wrong servers.
RESERVED_SETTINGS = frozenset(
    {
        "site_id",
        "api_host",
        "api_port",
        "database_url",
        "redis_url",
        "mqtt_host",
        "mqtt_port",
        "mqtt_tls",
        "mqtt_ca",
        "mqtt_cert",
        "mqtt_key",
        "mqtt_client_id",
        "nats_url",
    }
)


class SiteSpec(Strict):
    """One site and the backend settings it overrides (``AURORA_*``, see backend.settings)."""

    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="backend setting overrides, e.g. {unlock_duration_s: 1}",
    )
    sentinel: bool = Field(
        default=False,
        description="also run the Sentinel (seed 003) with this site as its customer origin "
        "(the first site only)",
    )

    def problems(self) -> dict[str, str]:
        """Overrides the backend does not know or the bench owns: key -> what is wrong.

        Checked by the loader (which knows the line of each key), not by a validator.
        """
        known = set(Settings.model_fields) - RESERVED_SETTINGS
        problems = {}
        for key in self.settings:
            if key in RESERVED_SETTINGS:
                problems[key] = f"setting {key!r} is owned by the bench and cannot be overridden"
            elif key not in known:
                problems[key] = (
                    f"unknown backend setting {key!r}; known: {', '.join(sorted(known))}"
                )
        return problems

    def env(self) -> dict[str, str]:
        """The overrides as ``AURORA_*`` environment variables (dicts and lists as JSON)."""
        env: dict[str, str] = {}
        for key, value in sorted(self.settings.items()):
            if isinstance(value, dict | list):
                text = json.dumps(value)
            elif isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = str(value)
            env[f"AURORA_{key.upper()}"] = text
        return env


def _board(value: object) -> object:
    # Retired names (`door`, `stm32f401`) get the name to write instead.
    return parse_board(value) if isinstance(value, str) else value


class EmulatedSpec(Strict):
    """Real firmware under QEMU (the emulated tier, ``hardware/firmware/``)."""

    board: Literal["stm32f405-door"] = Field(
        "stm32f405-door", description="emulated board (QEMU netduinoplus2, an STM32F405)"
    )
    firmware: str | None = Field(
        None, description="ELF to run (default: the reference door firmware, built on demand)"
    )


class NodeSpec(Strict):
    """A simulated device (``board``), a real board when ``port`` names its serial port, or
    real firmware under QEMU (``emulated``)."""

    id: DeviceId
    board: Annotated[BoardKind | None, BeforeValidator(_board)] = None
    site: SiteId | None = Field(None, description="default: the first site")
    firmware_version: str | None = None
    port: str | None = Field(
        None, description="serial port of a real board (e.g. /dev/ttyACM0) instead of a model"
    )
    emulated: EmulatedSpec | None = Field(
        None, description="run the board's firmware under QEMU instead of a model"
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="model parameters passed to the simulator"
    )

    @model_validator(mode="after")
    def _board_or_emulated(self) -> NodeSpec:
        if (self.board is None) == (self.emulated is None):
            raise ValueError("a fleet node names exactly one of `board` or `emulated`")
        if self.emulated is not None and (self.port is not None or self.options):
            raise ValueError("an `emulated` node takes no `port` or `options`")
        return self
