"""QEMU running a board's firmware, its UARTs on pseudo-terminals (the emulated tier).

The machine is QEMU's ``netduinoplus2`` (an STM32F405, Cortex-M4): Debian 12's QEMU 7.2
has it with all six USARTs wired to ``-serial`` in order, while ``olimex-stm32-h405`` came
only with QEMU 8. ``-serial pty`` twice puts USART1 (the bench framing) and USART2 (the
PN532 reader) on two PTYs; QEMU names them on its output, which :func:`parse_ptys` reads.
The device id reaches the firmware through semihosting's command line, so the measured
image is the same for every id.

QEMU starts paused (``-S``): a PTY drops what is written while nobody holds its other
end, and pyserial flushes pending input when it opens a port, so output written before the
bridge opened the console would be lost (the boot banner and the first ``status``).
:meth:`Emulator.start` holds both PTYs open (raw, so nothing is echoed back into the UART)
and leaves the CPU stopped; the owner calls :meth:`Emulator.boot` (QMP ``cont``) once its
bridge has the console open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import tty
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hardware.errors import HardwareError

MACHINE = "netduinoplus2"
FIRMWARE_DIR = Path(__file__).with_name("firmware")
DEFAULT_FIRMWARE = FIRMWARE_DIR / "build" / "door.elf"
#: serial0 is USART1 (framing), serial1 USART2 (PN532).
CONSOLE_LABEL, READER_LABEL = "serial0", "serial1"
_PTY_LINE = re.compile(r"char device redirected to (?P<path>/dev/pts/\d+) \(label (?P<label>\w+)\)")


class EmulatorError(HardwareError):
    """QEMU is missing, would not start, or the firmware cannot be built."""


@dataclass(frozen=True)
class EmulatorSpec:
    """What to run: the firmware ELF and the device id it is told at boot."""

    firmware: Path
    device_id: str
    machine: str = MACHINE
    qemu: str = "qemu-system-arm"
    extra_args: tuple[str, ...] = field(default=())


def qemu_command(spec: EmulatorSpec, qemu_path: str, qmp_socket: Path) -> list[str]:
    """The QEMU command line for ``spec``, paused, QMP on ``qmp_socket`` (pure)."""
    return [
        qemu_path,
        "-M", spec.machine,
        "-S",
        "-qmp", f"unix:{qmp_socket},server=on,wait=off",
        "-display", "none",
        "-monitor", "none",
        "-kernel", str(spec.firmware),
        "-serial", "pty",
        "-serial", "pty",
        # argv[0] then the id: the firmware reads the second word (SYS_GET_CMDLINE).
        "-semihosting-config", f"enable=on,target=native,arg=firmware,arg={spec.device_id}",
        *spec.extra_args,
    ]  # fmt: skip


def parse_ptys(text: str) -> dict[str, str]:
    """``{label: /dev/pts/N}`` from QEMU's output (pure)."""
    return {m["label"]: m["path"] for m in _PTY_LINE.finditer(text)}


def find_qemu(name: str = "qemu-system-arm") -> str:
    """The QEMU binary, or an error saying how to install it."""
    path = shutil.which(name)
    if path is None:
        raise EmulatorError(
            f"{name} is not installed: `make setup-emulated` (or apt-get install "
            "qemu-system-arm gcc-arm-none-eabi libnewlib-arm-none-eabi)"
        )
    return path


def ensure_firmware(path: Path) -> Path:
    """``path`` if it exists; the reference firmware is built on first use."""
    if path.exists():
        return path
    if path != DEFAULT_FIRMWARE:
        raise EmulatorError(f"firmware {path} does not exist")
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("make") is None:
        raise EmulatorError(
            "the reference firmware is not built and arm-none-eabi-gcc is missing: "
            "`make setup-emulated`, then `make -C hardware/firmware`"
        )
    result = subprocess.run(
        ["make", "-C", str(FIRMWARE_DIR), "all"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 or not path.exists():
        raise EmulatorError(f"building the reference firmware failed:\n{result.stderr[-2000:]}")
    return path


class Emulator:
    """One QEMU process; ``console`` and ``reader`` are its PTY paths once started."""

    def __init__(self, spec: EmulatorSpec, log_path: Path | None = None) -> None:
        self.spec = spec
        self.log_path = log_path
        self.console = ""
        self.reader = ""
        self._process: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None
        self._held: list[int] = []
        self._qmp_socket = Path()
        self._dir = Path(tempfile.mkdtemp(prefix="aurora-qemu-"))

    @property
    def pid(self) -> int | None:
        """QEMU's process id while it runs."""
        return self._process.pid if self._process is not None else None

    async def start(self, timeout_s: float = 10.0) -> None:
        """Start QEMU with its CPU stopped and hold both PTYs open (see :meth:`boot`)."""
        qmp = self._dir / "qmp.sock"
        command = qemu_command(self.spec, find_qemu(self.spec.qemu), qmp)
        self._process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # our Ctrl-C is ours to forward, not QEMU's
        )
        assert self._process.stdout is not None
        try:
            seen = await _until_ptys_named(self._process.stdout, timeout_s)
        except BaseException:
            await self.aclose()
            raise
        ptys = parse_ptys(seen)
        self.console, self.reader = ptys[CONSOLE_LABEL], ptys[READER_LABEL]
        for path in (self.console, self.reader):
            fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            tty.setraw(fd)
            self._held.append(fd)
        self._qmp_socket = qmp
        self._drain = asyncio.create_task(
            self._keep_log(self._process.stdout, seen), name="qemu-output"
        )

    async def _keep_log(self, stream: asyncio.StreamReader, first: str) -> None:
        log = self.log_path.open("a") if self.log_path else None
        try:
            if log:
                log.write(first)
            while line := await stream.readline():
                if log:
                    log.write(line.decode(errors="replace"))
                    log.flush()
        finally:
            if log:
                log.close()

    async def boot(self, timeout_s: float = 10.0) -> None:
        """Let the CPU run: the firmware boots from its reset vector."""
        await _qmp(self._qmp_socket, "cont", timeout_s)

    async def wait(self) -> int:
        """Wait for QEMU to exit; its return code."""
        assert self._process is not None
        return await self._process.wait()

    async def aclose(self) -> None:
        """Stop QEMU (SIGTERM, then SIGKILL); safe to call twice."""
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                async with asyncio.timeout(3):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        drain, self._drain = self._drain, None
        if drain is not None:
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain
        held, self._held = self._held, []
        for fd in held:
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self._dir, ignore_errors=True)


async def _until_ptys_named(stream: asyncio.StreamReader, timeout_s: float) -> str:
    """QEMU's output up to the line naming the second PTY."""
    seen = ""
    try:
        async with asyncio.timeout(timeout_s):
            while not {CONSOLE_LABEL, READER_LABEL} <= parse_ptys(seen).keys():
                line = await stream.readline()
                if not line:
                    break
                seen += line.decode(errors="replace")
    except TimeoutError:
        raise EmulatorError(f"QEMU named no PTYs within {timeout_s} s:\n{seen[-2000:]}") from None
    if not {CONSOLE_LABEL, READER_LABEL} <= parse_ptys(seen).keys():
        raise EmulatorError(f"QEMU exited while starting:\n{seen[-2000:]}")
    return seen


async def _connect_unix(path: Path, attempts: int = 500) -> tuple[Any, Any]:
    """Connect to QEMU's QMP socket, which appears a moment after QEMU starts."""
    for _ in range(attempts - 1):
        try:
            return await asyncio.open_unix_connection(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            await asyncio.sleep(0.01)
    return await asyncio.open_unix_connection(str(path))


async def _qmp(socket_path: Path, command: str, timeout_s: float) -> None:
    """Run one QMP command (after the capabilities handshake); errors become ours."""
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await _connect_unix(socket_path)
            try:
                await reader.readline()  # the greeting
                for execute in ("qmp_capabilities", command):
                    writer.write(json.dumps({"execute": execute}).encode() + b"\n")
                    await writer.drain()
                    while True:
                        reply = json.loads(await reader.readline() or b"{}")
                        if "return" in reply:
                            break
                        if "error" in reply or not reply:
                            raise EmulatorError(f"QMP {execute} failed: {reply}")
            finally:
                writer.close()
    except (OSError, TimeoutError, json.JSONDecodeError) as error:
        raise EmulatorError(f"QEMU's monitor did not run {command!r}: {error!r}") from None
