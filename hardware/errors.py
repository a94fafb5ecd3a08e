"""Errors the hardware package raises on purpose; each says what to do about it.

Exception tree::

    HardwareError
    ├── BoardNotFoundError     no plugged-in port matches the selector (lists what is there)
    ├── AmbiguousBoardError    ``auto`` or a selector matches several boards
    └── PortError              a port could not be opened, read or written (unplugged?)
"""

from __future__ import annotations


class HardwareError(Exception):
    """Root of everything the hardware package raises on purpose."""


class BoardNotFoundError(HardwareError):
    """No port matches ``selector``; ``available`` are the ports that exist."""

    def __init__(self, selector: str, available: list[str]) -> None:
        self.selector = selector
        self.available = available
        listed = ", ".join(available) if available else "no serial ports at all"
        super().__init__(
            f"no serial board matches {selector!r} (a port path, serial number or USB "
            f"location); plugged in: {listed}. Run `aurora-bench boards` to see them."
        )


class AmbiguousBoardError(HardwareError):
    """Several boards match; the user must name one."""

    def __init__(self, selector: str, matches: list[str]) -> None:
        self.selector = selector
        self.matches = matches
        super().__init__(
            f"{selector!r} matches several boards ({', '.join(matches)}); choose one with "
            "--port PATH, its serial number or its USB location"
        )


class PortError(HardwareError):
    """A serial port failed; ``port`` is the path, ``reason`` pyserial's or the OS's words."""

    def __init__(self, port: str, reason: str) -> None:
        self.port = port
        self.reason = reason
        super().__init__(f"serial port {port}: {reason}")
