"""The board end of a pseudo-terminal: a virtual board's UART.

A :class:`PtyPort` owns a PTY pair opened in raw mode (no echo, no newline translation -
bytes pass as on a real UART). The host side opens the *slave* path with pyserial exactly
like ``/dev/ttyACM0``. Because a new PTY gets a new ``/dev/pts/N`` name, the port keeps a
stable symlink (``link_path``), the way ``/dev/serial/by-id`` names a USB board.

:meth:`unplug` closes the master: the host's next read fails as on a USB unplug, and the
link disappears. :meth:`plug` opens a fresh PTY and points the link at it again.

Like a real UART, output the host is not reading is lost once the line buffer is full:
:meth:`write` never blocks the board, it counts the bytes it had to drop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import tty
from pathlib import Path

from hardware.errors import PortError


class PtyPort:
    """A pseudo-terminal seen from the board (see the module doc)."""

    def __init__(self, link_path: Path | None = None) -> None:
        self.link_path = link_path
        self._master: int | None = None
        self._slave: int | None = None
        self.slave_path: str | None = None
        self.dropped_bytes = 0
        self._incoming: asyncio.Queue[bytes] = asyncio.Queue()

    @property
    def plugged(self) -> bool:
        """True while the PTY exists."""
        return self._master is not None

    @property
    def path(self) -> str:
        """What a host opens: the stable link when there is one, else the slave path."""
        if self.link_path is not None:
            return str(self.link_path)
        if self.slave_path is None:
            raise PortError("pty", "the virtual board is unplugged")
        return self.slave_path

    def plug(self) -> str:
        """Create the PTY (raw mode), point the link at it, start reading; returns the path."""
        if self._master is not None:
            return self.path
        master, slave = pty.openpty()
        # Raw on the slave: the host sees exactly the bytes the board wrote. The board keeps
        # its own slave descriptor open so the PTY lives while no host has it open (a closed
        # last slave would make every master read fail with EIO).
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.slave_path = os.ttyname(slave)
        if self.link_path is not None:
            tmp = self.link_path.with_name(self.link_path.name + ".new")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self.slave_path)
            tmp.replace(self.link_path)
        asyncio.get_running_loop().add_reader(master, self._on_readable)
        return self.path

    def unplug(self) -> None:
        """Close the PTY as a USB unplug would: the host's reads fail, the link goes away."""
        master, slave = self._master, self._slave
        self._master = self._slave = None
        if master is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is already closed at shutdown
            asyncio.get_running_loop().remove_reader(master)
        if self.link_path is not None:
            self.link_path.unlink(missing_ok=True)
        os.close(master)
        if slave is not None:
            os.close(slave)

    def _on_readable(self) -> None:
        if self._master is None:
            return
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError:
            return  # EIO while no host holds the slave: nothing was sent
        if data:
            self._incoming.put_nowait(data)

    async def read(self) -> bytes:
        """The next bytes the host wrote to the board."""
        return await self._incoming.get()

    def write(self, data: bytes) -> int:
        """Send ``data`` to the host; returns the bytes written (the rest is dropped)."""
        if self._master is None:
            self.dropped_bytes += len(data)
            return 0
        written = 0
        while written < len(data):
            try:
                written += os.write(self._master, data[written:])
            except BlockingIOError:
                break
            except OSError:
                break
        self.dropped_bytes += len(data) - written
        return written
