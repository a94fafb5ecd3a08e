"""The one set of board names: fleets, scenarios, ``virtual-board``, ``bridge``, ``battery``.

A board is named by its family and role (``stm32f401-door``); the family part
(``stm32f401``) is what the hardware profiles key their USB identity and reset on. Names
used by earlier versions of the bench are refused with the name to write instead.
"""

from __future__ import annotations

from enum import StrEnum


class BoardKind(StrEnum):
    """A simulated or real board, by the name every command and file uses."""

    ESP32S3_ENV = "esp32s3-env"
    STM32F401_ACCESS = "stm32f401-access"
    STM32F401_DOOR = "stm32f401-door"
    NRF52840_SENTINEL = "nrf52840-sentinel"

    @property
    def family(self) -> str:
        """The chip family (``stm32f401``): what the board reports as ``board_family``."""
        return self.value.split("-", 1)[0]


#: Names that meant a board before the names were unified, and what to write now.
RETIRED_BOARD_NAMES: dict[str, str] = {
    "door": "stm32f401-door",
    "access": "stm32f401-access",
    "env": "esp32s3-env",
    "sentinel": "nrf52840-sentinel",
    "esp32s3": "esp32s3-env",
    "stm32f401": "stm32f401-access or stm32f401-door",
    "nrf52840": "nrf52840-sentinel",
}


def board_name_problem(name: str) -> str | None:
    """Why ``name`` is not a board name (with what to write instead), or None."""
    if name in BoardKind._value2member_map_:
        return None
    known = ", ".join(kind.value for kind in BoardKind)
    retired = RETIRED_BOARD_NAMES.get(name)
    if retired is not None:
        return f"board {name!r} is now called {retired} (one set of board names: {known})"
    return f"unknown board {name!r}; choose one of {known}"


def parse_board(name: str) -> BoardKind:
    """The board named ``name``; ``ValueError`` with a hint for a retired or unknown name."""
    problem = board_name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    return BoardKind(name)
