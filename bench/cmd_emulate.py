"""``aurora-bench emulate``: a board's real firmware under QEMU, bridged like a USB board.

The console UART is a PTY that the unchanged bridge (or the conformance check) opens
exactly as it opens a real port; the bench plays the PN532 reader on the second UART, so
``swipe UID`` on stdin puts a card where the firmware's own reader driver finds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path

import click

from bench.benchfile import read_bench_file
from bench.cli_options import file_option, site_option, state_dir_option
from bench.cmd_hardware import _run, conformance_verdict, echo_violations, make_bridge
from bench.stdin_script import run_script, stdin_restored
from hardware.conformance import ConformanceCheck
from hardware.emulated import EmulatedDoor
from hardware.emulator import DEFAULT_FIRMWARE, EmulatorSpec, ensure_firmware
from hardware.errors import HardwareError
from hardware.link import SerialLink
from hardware.profiles import GENERIC

#: Emulated boards: name -> QEMU machine. The reference firmware is a door reader.
EMULATED_BOARDS = {"stm32f405-door": "netduinoplus2"}
SCRIPT_HELP = "swipe UID (hex, 4/7/10 bytes) | quit"


@click.command()
@click.option(
    "--board",
    type=click.Choice(sorted(EMULATED_BOARDS)),
    default="stm32f405-door",
    show_default=True,
    help="Emulated board (QEMU machine netduinoplus2, an STM32F405).",
)
@click.option("--id", "device_id", required=True, help="Device id the firmware is told at boot.")
@file_option(
    "--firmware",
    default=DEFAULT_FIRMWARE,
    show_default=True,
    help="ELF to run (your own, speaking the framing; the reference one is built on demand).",
)
@state_dir_option()
@site_option()
@click.option(
    "--conformance",
    "conformance_s",
    type=click.FloatRange(min=1.0),
    help="Instead of bridging: check the firmware's frames for this many seconds, exit 1 "
    "on violations (needs no running site).",
)
@file_option(
    "--json",
    "json_path",
    help="With --conformance: also write the report as JSON.",
)
def emulate(  # noqa: PLR0917 - click passes options positionally
    board: str,
    device_id: str,
    firmware: Path,
    state_dir: Path,
    site_id: str,
    conformance_s: float | None,
    json_path: Path | None,
) -> None:
    """Run a board's firmware under QEMU and bridge it to a site (stdin: swipe UID)."""
    try:
        elf = ensure_firmware(firmware)
    except HardwareError as error:
        raise click.ClickException(str(error)) from None
    spec = EmulatorSpec(elf, device_id, machine=EMULATED_BOARDS[board])
    if conformance_s is not None:
        check = _run(lambda: _conformance(spec, conformance_s))
        conformance_verdict(check.report, json_path)
        sys.exit(0)
    info = read_bench_file(state_dir)
    logs = Path(info.state_dir) / "boards"
    logs.mkdir(parents=True, exist_ok=True)

    async def main() -> None:
        async with EmulatedDoor(spec, logs / f"qemu-{device_id}.log") as door:
            bridge = make_bridge(info, site_id, door.console_port)
            click.echo(
                f"emulating {board} ({elf.name}) as {device_id}: console {door.console_port}, "
                f"bridged to site {site_id}; board logs in {logs}/"
            )
            click.echo(f"commands: {SCRIPT_HELP}")
            async with asyncio.TaskGroup() as group:
                runner = group.create_task(bridge.run(), name="bridge")
                await bridge.wait_until(lambda stats: stats.port_opens >= 1)
                await door.boot()
                group.create_task(run_script(runner, swipe_command(door, runner)), name="script")

    with stdin_restored(), contextlib.suppress(asyncio.CancelledError):
        _run(main)


async def _conformance(spec: EmulatorSpec, duration_s: float) -> ConformanceCheck:
    check = ConformanceCheck()
    loop = asyncio.get_running_loop()
    async with EmulatedDoor(spec) as door:
        link = await SerialLink.open(door.console_port, GENERIC)
        try:
            await door.boot()
            click.echo(f"listening to {spec.device_id} on {door.console_port} for {duration_s:g} s")
            deadline = loop.time() + duration_s
            while loop.time() < deadline:
                data = await link.read()
                if data:
                    echo_violations(check, data, loop.time())
        finally:
            await link.aclose()
    check.finish()
    return check


def swipe_command(door: EmulatedDoor, runner: asyncio.Task[None]) -> Callable[[str], bool]:
    """``swipe UID`` or ``quit`` (which ends the bridge) from one stdin line."""

    def handle(text: str) -> bool:
        words = text.split()
        if words[:1] == ["quit"]:
            runner.cancel()
            return False
        if len(words) == 2 and words[0] == "swipe":
            try:
                door.swipe(words[1])
            except ValueError as error:
                click.echo(f"error: {error}")
                return True
            click.echo(f"ok swipe {words[1].upper()} (on the reader until the next poll)")
        elif words:
            click.echo(f"error: unknown command; {SCRIPT_HELP}")
        return True

    return handle
