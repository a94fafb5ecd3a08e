"""An emulated door: QEMU running the firmware, the bench playing its PN532 reader.

The console PTY is an ordinary serial port to the rest of the bench: the existing bridge
and conformance code open it exactly as they open a USB board. This class owns the QEMU
process and the reader side: cards presented with :meth:`EmulatedDoor.swipe` are read by
the firmware's own PN532 driver, which is what makes a swipe go through the firmware.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from hardware.emulator import Emulator, EmulatorSpec
from hardware.errors import PortError
from hardware.link import ByteLink, SerialLink
from hardware.pn532 import Pn532Model
from hardware.profiles import GENERIC


class EmulatedDoor:
    """Start with :meth:`start`; :attr:`console_port` is the board's serial port."""

    def __init__(self, spec: EmulatorSpec, log_path: Path | None = None) -> None:
        self.emulator = Emulator(spec, log_path)
        self.reader = Pn532Model()
        self._link: ByteLink | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def console_port(self) -> str:
        """The PTY carrying the bench framing (USART1)."""
        return self.emulator.console

    async def start(self) -> None:
        """Start QEMU (CPU stopped) and the reader model; :meth:`boot` runs the firmware
        once the console port is held by whoever listens to it."""
        await self.emulator.start()
        try:
            self._link = await SerialLink.open(self.emulator.reader, GENERIC)
        except BaseException:
            await self.emulator.aclose()
            raise
        self._task = asyncio.create_task(self._serve_reader(), name="pn532-model")

    async def boot(self) -> None:
        """Run the firmware from reset."""
        await self.emulator.boot()

    def swipe(self, uid_hex: str) -> None:
        """Put a card on the reader; the firmware's next poll reads it."""
        try:
            uid = bytes.fromhex(uid_hex)
        except ValueError:
            raise ValueError(f"badge uid {uid_hex!r} is not hex") from None
        self.reader.present(uid)

    async def _serve_reader(self) -> None:
        assert self._link is not None
        while True:
            try:
                data = await self._link.read()
            except PortError:
                return  # QEMU went away: the owner sees it through the emulator
            if data:
                reply = self.reader.feed(data)
                if reply:
                    await self._link.write(reply)

    async def aclose(self) -> None:
        """Stop the reader model and QEMU; safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        link, self._link = self._link, None
        if link is not None:
            await link.aclose()
        await self.emulator.aclose()

    async def __aenter__(self) -> EmulatedDoor:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()
