"""Byte links to a board: the :class:`ByteLink` protocol and its pyserial implementation.

pyserial is blocking, so :class:`SerialLink` runs every call in a thread of its own with a
short read timeout: the event loop never blocks, and a cancelled read returns within
``READ_TIMEOUT_S``. Reads run on one thread and writes on another, so a command going down
never waits behind a read; the port is closed on the reader thread, after the last read,
so no thread ever touches a closed file descriptor. pyserial's exceptions become
:class:`~hardware.errors.PortError` here, where they enter.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import serial

from hardware.errors import PortError
from hardware.profiles import BoardProfile

#: Upper bound on how long a cancelled read keeps its thread busy.
READ_TIMEOUT_S = 0.05
#: A write that cannot drain in this time means the board stopped reading (or vanished).
WRITE_TIMEOUT_S = 2.0


class ByteLink(Protocol):
    """Bytes to and from a board; ``read`` returns ``b""`` when nothing arrived in time."""

    async def read(self) -> bytes:
        """What arrived since the last call (may be empty); PortError when the port died."""
        ...

    async def write(self, data: bytes) -> None:
        """Send ``data`` to the board; PortError when the port died."""
        ...

    async def aclose(self) -> None:
        """Close the link; safe to call twice."""
        ...


class SerialLink:
    """A pyserial port driven from asyncio (see the module doc)."""

    def __init__(self, port: serial.SerialBase, path: str) -> None:
        self._port = port
        self.path = path
        self._reader = ThreadPoolExecutor(1, thread_name_prefix=f"serial-read {path}")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix=f"serial-write {path}")
        self._closed = False

    @classmethod
    async def open(
        cls, path: str, profile: BoardProfile, baud: int | None = None, reset: bool = False
    ) -> SerialLink:
        """Open ``path`` at the profile's baud rate, optionally running its reset sequence.

        The modem lines are set *before* the port opens (pyserial applies them on open), so
        opening does not reset a board whose EN/IO0 are wired to RTS/DTR.
        """

        def blocking_open() -> serial.SerialBase:
            port = serial.serial_for_url(
                path,
                baudrate=baud or profile.baud,
                timeout=READ_TIMEOUT_S,
                write_timeout=WRITE_TIMEOUT_S,
                # Two readers would each get half of the bytes: refuse a second opener.
                exclusive=True,
                do_not_open=True,
            )
            port.dtr = profile.open_dtr
            port.rts = profile.open_rts
            port.open()
            if reset:
                for step in profile.reset:
                    port.dtr = step.dtr
                    port.rts = step.rts
                    time.sleep(step.hold_s)
            return port

        try:
            port = await asyncio.to_thread(blocking_open)
        except (serial.SerialException, OSError, ValueError) as error:
            reason = str(error)
            if "exclusively lock" in reason:
                reason = "busy: another bridge, conformance run or serial monitor has it open"
            raise PortError(path, reason) from None
        return cls(port, path)

    async def _call(self, executor: ThreadPoolExecutor, fn: Any, *args: Any) -> Any:
        if self._closed:
            raise PortError(self.path, "port is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(executor, fn, *args)
        except (serial.SerialException, OSError, TypeError) as error:
            # TypeError: pyserial's posix read on an fd closed under it (board gone).
            raise PortError(self.path, str(error) or type(error).__name__) from None

    def _read_blocking(self) -> bytes:
        data: bytes = self._port.read(1)
        if data:
            waiting = self._port.in_waiting
            if waiting:
                data += self._port.read(waiting)
        return data

    async def read(self) -> bytes:
        """Up to everything waiting; ``b""`` after ``READ_TIMEOUT_S`` with nothing."""
        data: bytes = await self._call(self._reader, self._read_blocking)
        return data

    async def write(self, data: bytes) -> None:
        """Write ``data`` and wait until pyserial accepted all of it."""

        def blocking_write() -> None:
            self._port.write(data)
            self._port.flush()

        await self._call(self._writer, blocking_write)

    async def aclose(self) -> None:
        """Abort a pending read, close the port on the reader thread, stop the threads."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        cancel_read = getattr(self._port, "cancel_read", None)
        if cancel_read is not None:
            # A port that is already gone has no read to cancel; closing is all that is left.
            with contextlib.suppress(serial.SerialException, OSError):
                cancel_read()
        try:
            await loop.run_in_executor(self._writer, lambda: None)
            await loop.run_in_executor(self._reader, self._port.close)
        except (serial.SerialException, OSError):
            pass  # a vanished device may fail to close; its descriptor is released anyway
        finally:
            self._reader.shutdown(wait=False)
            self._writer.shutdown(wait=False)
