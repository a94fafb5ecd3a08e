"""Which boards are plugged in (pyserial's port listing) and choosing one of them.

A board may be chosen by port path (``/dev/ttyACM0``, a ``/dev/serial/by-id`` link or a
virtual board's PTY link), by USB serial number, or by USB location (``1-1.2:1.0``) - the
last two survive re-enumeration, which port names do not. ``auto`` picks the one recognised board
(or, with none, the one USB-UART bridge).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hardware.errors import AmbiguousBoardError, BoardNotFoundError
from hardware.profiles import GENERIC, BoardProfile, match_profile


class PortInfo(Protocol):
    """The fields of pyserial's ``ListPortInfo`` the discovery reads."""

    device: str
    description: str
    vid: int | None
    pid: int | None
    serial_number: str | None
    location: str | None
    manufacturer: str | None
    product: str | None


@dataclass(frozen=True, slots=True)
class BoardPort:
    """A serial port and the board profile it matched (None: not a board the bench knows)."""

    device: str
    description: str
    vid: int | None
    pid: int | None
    serial_number: str | None
    location: str | None
    profile: BoardProfile | None

    @property
    def usb_id(self) -> str:
        """``vvvv:pppp`` or ``-`` for a port without USB identity."""
        if self.vid is None:
            return "-"
        return f"{self.vid:04x}:{self.pid or 0:04x}"

    @property
    def label(self) -> str:
        """One line naming the port for error messages."""
        extra = [self.usb_id] if self.vid is not None else []
        if self.serial_number:
            extra.append(f"serial {self.serial_number}")
        return f"{self.device} ({', '.join(extra)})" if extra else self.device


def board_port(info: PortInfo) -> BoardPort:
    """Describe one pyserial port entry, matching its profile."""
    return BoardPort(
        device=info.device,
        description=info.description or info.product or "",
        vid=info.vid,
        pid=info.pid,
        serial_number=info.serial_number,
        location=info.location,
        profile=match_profile(info.vid, info.pid),
    )


def list_boards(ports: Iterable[PortInfo] | None = None) -> list[BoardPort]:
    """USB serial ports, known boards first; ``ports`` defaults to pyserial's listing.

    Ports without USB identity (legacy ``ttyS*`` UARTs that every PC lists) are left out:
    they are never a plugged-in board, and listing them hides the real ones.
    """
    if ports is None:
        from serial.tools import list_ports

        ports = list_ports.comports()
    found = [board_port(info) for info in ports if info.vid is not None]
    return sorted(found, key=lambda port: (port.profile is None, port.device))


def select_board(selector: str, ports: Sequence[BoardPort]) -> BoardPort:
    """The port named by ``selector``: ``auto``, a path, a serial number or a USB location.

    A path that exists but is not listed (a PTY, a by-id link) is accepted as a generic
    port, so virtual boards and odd adapters work the same way as listed ones.
    """
    if selector == "auto":
        # A board the bench recognises beats a bare USB-UART bridge, which beats nothing.
        boards = [port for port in ports if port.profile and port.profile.board_family]
        known = boards or [port for port in ports if port.profile is not None]
        if len(known) == 1:
            return known[0]
        if not known:
            raise BoardNotFoundError(selector, [port.label for port in ports])
        raise AmbiguousBoardError(selector, [port.label for port in known])
    matches = [
        port
        for port in ports
        if selector in (port.device, port.serial_number, port.location)
        or _same_file(selector, port.device)
    ]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise AmbiguousBoardError(selector, [port.label for port in matches])
    if Path(selector).exists():
        return BoardPort(selector, "serial port", None, None, None, None, GENERIC)
    raise BoardNotFoundError(selector, [port.label for port in ports])


def _same_file(path: str, device: str) -> bool:
    # /dev/serial/by-id/... links resolve to the listed /dev/ttyACMn.
    try:
        return Path(path).resolve() == Path(device).resolve()
    except OSError:
        return False
