"""Board profiles: which USB serial path belongs to which board, its baud rate and reset.

Matching is by USB VID:PID as pyserial reports it. A profile with ``pid=None`` matches every
product of its vendor (SEGGER numbers its J-Link OB variants freely). Generic USB-UART
bridges (CP210x, CH340, FTDI) carry any board, so they match the ``unknown`` profile: the
bridge still works, the user may name the board with ``--board``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ResetStep:
    """Drive the modem control lines, then hold them for ``hold_s`` seconds."""

    dtr: bool
    rts: bool
    hold_s: float


@dataclass(frozen=True, slots=True)
class BoardProfile:
    """What the bench knows about one kind of board as it appears on USB.

    ``open_dtr``/``open_rts`` are the line states applied as the port opens: pyserial's
    default (both asserted) is harmless for most adapters, but the lines are wired to
    EN/IO0 on ESP32 boards, so the profile states them to open the port *without* resetting
    the board (a log kept across test runs needs that).
    """

    name: str
    board_family: str | None
    description: str
    vid: int
    pid: int | None
    baud: int = 115200
    reset: tuple[ResetStep, ...] = ()
    reset_hint: str = ""
    open_dtr: bool = False
    open_rts: bool = False

    def matches(self, vid: int | None, pid: int | None) -> bool:
        """True when a port with this VID:PID is this profile's board."""
        return vid == self.vid and (self.pid is None or pid == self.pid)

    @property
    def usb_id(self) -> str:
        """``vvvv:pppp`` (``vvvv:*`` for a vendor-wide profile)."""
        pid = "*" if self.pid is None else f"{self.pid:04x}"
        return f"{self.vid:04x}:{pid}"


# ESP32-S3 USB-Serial/JTAG: RTS drives chip reset (EN) and DTR the boot strap (IO0), as in
# esptool's hard reset: pulse RTS with DTR released so the chip boots the application, not
# the ROM download mode. USB-JTAG needs the longer hold (esptool uses 0.2 s there).
_ESP32S3_RESET = (
    ResetStep(dtr=False, rts=True, hold_s=0.2),
    ResetStep(dtr=False, rts=False, hold_s=0.05),
)
_SWD_HINT = "no reset over the serial lines; reset through the debug probe (e.g. `st-flash reset`)"
_JLINK_HINT = "no reset over the serial lines; reset through J-Link (`nrfjprog --reset`)"

ESP32S3 = BoardProfile(
    "esp32s3",
    "esp32s3",
    "ESP32-S3 USB-Serial/JTAG",
    0x303A,
    0x1001,
    reset=_ESP32S3_RESET,
)
_STLINK_PIDS = {
    0x374B: "ST-LINK/V2-1 virtual COM port",
    0x3752: "ST-LINK/V2-1 virtual COM port (no mass storage)",
    0x374E: "STLINK-V3E virtual COM port",
    0x374F: "STLINK-V3 virtual COM port",
    0x3753: "STLINK-V3 virtual COM port (dual VCP)",
    0x3754: "STLINK-V3 virtual COM port (no mass storage)",
}
STLINK = tuple(
    BoardProfile("stm32f401", "stm32f401", text, 0x0483, pid, reset_hint=_SWD_HINT)
    for pid, text in _STLINK_PIDS.items()
)
NRF52840_DK = BoardProfile(
    "nrf52840",
    "nrf52840",
    "nRF52840 DK (SEGGER J-Link OB virtual COM port)",
    0x1366,
    None,
    reset_hint=_JLINK_HINT,
)
NRF52840_DONGLE = BoardProfile(
    "nrf52840",
    "nrf52840",
    "nRF52840 Dongle (Nordic USB CDC ACM)",
    0x1915,
    0x521F,
    reset_hint="no reset over the serial lines; press the dongle's RESET button",
)
_BRIDGES = {
    (0x10C4, 0xEA60): "Silicon Labs CP210x USB-UART bridge",
    (0x1A86, 0x7523): "WCH CH340 USB-UART bridge",
    (0x1A86, 0x55D4): "WCH CH343/CH9102 USB-UART bridge",
    (0x0403, 0x6001): "FTDI FT232R USB-UART bridge",
    (0x0403, 0x6010): "FTDI FT2232 USB-UART bridge",
    (0x0403, 0x6014): "FTDI FT232H USB-UART bridge",
    (0x0403, 0x6015): "FTDI FT-X USB-UART bridge",
}
USB_UART_BRIDGES = tuple(
    BoardProfile(
        "unknown",
        None,
        f"unknown board behind a {text}",
        vid,
        pid,
        reset_hint="unknown board: name it with --board to get its reset sequence",
        open_dtr=False,
        open_rts=False,
    )
    for (vid, pid), text in _BRIDGES.items()
)

#: Every profile the discovery matches against, most specific first.
PROFILES: tuple[BoardProfile, ...] = (
    ESP32S3,
    *STLINK,
    NRF52840_DONGLE,
    NRF52840_DK,
    *USB_UART_BRIDGES,
)

#: What ``--board`` accepts: one representative profile per board family.
BOARD_KINDS: dict[str, BoardProfile] = {
    "esp32s3": ESP32S3,
    "stm32f401": STLINK[0],
    "nrf52840": NRF52840_DK,
}

#: A port the bench knows nothing about (a PTY, an on-board UART): 115200 baud, no reset.
GENERIC = BoardProfile("generic", None, "serial port (no USB identity)", 0, 0)


def match_profile(vid: int | None, pid: int | None) -> BoardProfile | None:
    """The profile of a USB VID:PID, or None when the bench does not know it."""
    if vid is None:
        return None
    return next((profile for profile in PROFILES if profile.matches(vid, pid)), None)


def profile_for_kind(kind: str) -> BoardProfile:
    """The profile named by ``--board``; a clear error lists the names that exist."""
    try:
        return BOARD_KINDS[kind]
    except KeyError:
        known = ", ".join(sorted(BOARD_KINDS))
        raise ValueError(f"unknown board {kind!r}; choose one of {known}") from None
