"""``aurora-bench boards | bridge | virtual-board | conformance``: real boards and PTY ones.

The hardware package knows only the contract; this module hands it what the bench owns:
the site's broker endpoint from bench.json, and a certificate issuer backed by the bench PKI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from bench.benchfile import BenchInfo, read_bench_file
from bench.cli_options import file_option, site_option, state_dir_option
from bench.errors import BenchError
from bench.stdin_script import run_script, stdin_restored
from hardware.bridge import Bridge, BrokerEndpoint, DeviceCredentials
from hardware.conformance import ConformanceCheck, ConformanceReport, check_capture
from hardware.discovery import BoardPort, list_boards, select_board
from hardware.errors import BoardNotFoundError, HardwareError, PortError
from hardware.framing import Violation
from hardware.link import ByteLink, SerialLink
from hardware.profiles import GENERIC, BoardProfile, profile_for_kind
from simulators.board_names import BoardKind, board_name_problem

T = TypeVar("T")


class BoardName(click.ParamType):  # type: ignore[type-arg]
    """A board of the one set of names (``stm32f401-door``); retired names get a hint."""

    name = "board"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """The board name, or a usage error saying which name to write."""
        problem = board_name_problem(str(value))
        if problem is not None:
            self.fail(problem, param, ctx)
        return str(value)

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        """``[esp32s3-env|...]`` in the help."""
        return "[" + "|".join(kind.value for kind in BoardKind) + "]"


BOARD_CHOICES = BoardName()


def _echo(text: str) -> None:
    click.echo(text)


def _run(main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main`` until it ends or SIGINT/SIGTERM; hardware errors end in one line."""

    async def guarded() -> T:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        assert task is not None
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, task.cancel)
        return await main()

    try:
        return asyncio.run(guarded())
    except* HardwareError as group:
        raise click.ClickException(str(_first_leaf(group))) from None


def _first_leaf(error: BaseException) -> BaseException:
    # A task group nests the error that ended it; the user wants that one line, not the tree.
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


# -- boards --------------------------------------------------------------------------------


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def boards(as_json: bool) -> None:
    """List the USB serial boards plugged in, with the profile each matched."""
    found = list_boards()
    if as_json:
        click.echo(json.dumps([_board_dict(port) for port in found], indent=2))
        return
    if not found:
        click.echo(
            "no USB serial boards found. Plug a board in and check `dmesg` for its "
            "ttyACM/ttyUSB device and that you may open it (group dialout). Virtual boards "
            "(`aurora-bench virtual-board`) are not listed: pass their link path to --port."
        )
        return
    header = f"{'PORT':16} {'BOARD':10} {'USB ID':9} {'SERIAL':20} {'LOCATION':12} DESCRIPTION"
    click.echo(header)
    for port in found:
        profile = port.profile
        name = profile.name if profile else "-"
        description = profile.description if profile else port.description
        click.echo(
            f"{port.device:16} {name:10} {port.usb_id:9} {port.serial_number or '-':20} "
            f"{port.location or '-':12} {description}"
        )


def _board_dict(port: BoardPort) -> dict[str, Any]:
    profile = port.profile
    return {
        "port": port.device,
        "usb_id": port.usb_id,
        "serial_number": port.serial_number,
        "location": port.location,
        "description": port.description,
        "board": profile.name if profile else None,
        "board_family": profile.board_family if profile else None,
        "baud": profile.baud if profile else None,
        "reset": _reset_text(profile),
    }


def _reset_text(profile: BoardProfile | None) -> str | None:
    if profile is None:
        return None
    if profile.reset:
        return "DTR/RTS: " + ", ".join(
            f"dtr={int(step.dtr)} rts={int(step.rts)} {step.hold_s:g}s" for step in profile.reset
        )
    return profile.reset_hint or None


# -- port selection shared by bridge and conformance -----------------------------------------


def resolve_port(selector: str, board: str | None) -> tuple[BoardPort, BoardProfile, str]:
    """The port, its profile (``--board`` wins) and a selector that finds it again later.

    After an unplug a USB board may come back under another ``/dev/ttyACMn``; its serial
    number finds it again, so that is what a reopen looks for when there is one.
    """
    port = select_board(selector, list_boards())
    # The USB profile (reset lines, baud) belongs to the board's chip family.
    profile = profile_for_kind(BoardKind(board).family) if board else port.profile or GENERIC
    again = selector if selector != "auto" else (port.serial_number or port.device)
    return port, profile, again


def port_opener(
    selector: str, profile: BoardProfile, baud: int | None, reset: bool
) -> Callable[[], Awaitable[ByteLink]]:
    """Open the board named by ``selector``; the reset sequence runs on the first open only."""
    first = [reset]

    async def open_port() -> ByteLink:
        try:
            port = select_board(selector, list_boards())
        except BoardNotFoundError:
            raise PortError(selector, "not plugged in") from None
        except HardwareError as error:
            raise PortError(selector, str(error)) from None
        link = await SerialLink.open(port.device, profile, baud, reset=first[0])
        first[0] = False
        return link

    return open_port


# -- bridge --------------------------------------------------------------------------------


def make_bridge(
    info: BenchInfo,
    site_id: str,
    selector: str,
    *,
    board: str | None = None,
    baud: int | None = None,
    reset: bool = False,
    console: Callable[[str], None] = _echo,
    buffer_frames: int = 1000,
) -> Bridge:
    """A :class:`Bridge` from a running bench: site broker, bench PKI, port by selector."""
    from bench.pki import Pki

    site = info.site(site_id)
    ca = Path(info.ca)
    pki = Pki.ensure(ca.parent)

    def issue(device_id: str) -> DeviceCredentials:
        try:
            pair = pki.device(device_id)
        except BenchError as error:
            raise HardwareError(f"certificate for {device_id}: {error}") from None
        return DeviceCredentials(pair.cert, pair.key)

    port, profile, again = resolve_port(selector, board)
    return Bridge(
        port_name=port.device,
        open_port=port_opener(again, profile, baud, reset),
        broker=BrokerEndpoint(site.mqtt.host, site.mqtt.port, ca),
        issue_cert=issue,
        log_dir=Path(info.state_dir) / "boards",
        console=console,
        buffer_frames=buffer_frames,
    )


@click.command()
@click.option(
    "--port",
    "selector",
    default="auto",
    show_default=True,
    help="Port path, USB serial number, USB location, or auto.",
)
@click.option("--board", type=BOARD_CHOICES, help="Board kind (overrides the USB match).")
@click.option("--baud", type=int, help="Baud rate (default: the board profile's).")
@click.option(
    "--reset/--no-reset",
    default=False,
    show_default=True,
    help="Reset the board on the first open (when its profile knows how).",
)
@state_dir_option()
@site_option()
@click.option(
    "--buffer",
    "buffer_frames",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Frames held while the broker is unreachable.",
)
def bridge(  # noqa: PLR0917 - click passes options positionally
    selector: str,
    board: str | None,
    baud: int | None,
    reset: bool,
    state_dir: Path,
    site_id: str,
    buffer_frames: int,
) -> None:
    """Bridge a board on a serial port to a site started by `aurora-bench up`."""
    info = read_bench_file(state_dir)
    try:
        the_bridge = make_bridge(
            info,
            site_id,
            selector,
            board=board,
            baud=baud,
            reset=reset,
            buffer_frames=buffer_frames,
        )
    except HardwareError as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        f"bridging {the_bridge.port_name} to site {site_id}; board logs in "
        f"{the_bridge.log.directory}/ (Ctrl-C to stop)"
    )
    with contextlib.suppress(asyncio.CancelledError):
        _run(the_bridge.run)
    stats = the_bridge.stats
    click.echo(
        f"stopped: {sum(stats.frames.values())} frames, {stats.published} published, "
        f"{stats.violations} violations, {stats.refused} refused, {stats.dropped} dropped"
    )


# -- virtual board -------------------------------------------------------------------------


@click.command()
@click.option(
    "--board",
    "kind",
    type=BOARD_CHOICES,
    required=True,
    help="Which simulated board.",
)
@click.option("--id", "device_id", required=True, help="Its device id.")
@state_dir_option("Where the PTY link goes; its PKI signs the board.")
@click.option(
    "--link",
    "link_path",
    type=click.Path(path_type=Path),
    help="Stable path of the PTY (default <state-dir>/boards/<id>.tty).",
)
@click.option(
    "--heartbeat-s",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Status interval in seconds.",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=0.01),
    default=1.0,
    show_default=True,
    help="Simulated seconds per wall second.",
)
def virtual_board(  # noqa: PLR0917 - click passes options positionally
    kind: str,
    device_id: str,
    state_dir: Path,
    link_path: Path | None,
    heartbeat_s: float,
    speed: float,
) -> None:
    """Run a simulated board behind a pseudo-terminal; commands on stdin (try `help`)."""
    from bench.virtual_board import SCRIPT_HELP, ScriptError, VirtualBoard

    link = link_path or state_dir / "boards" / f"{device_id}.tty"
    link.parent.mkdir(parents=True, exist_ok=True)
    try:
        identity = _board_identity(state_dir, device_id)
    except (BenchError, ValueError) as error:
        raise click.ClickException(f"device identity for {device_id}: {error}") from None

    async def main() -> None:
        try:
            board = VirtualBoard(
                kind,
                device_id,
                link,
                identity=identity,
                heartbeat_s=heartbeat_s,
                speed=speed,
                say=_echo,
            )
        except (ScriptError, ValueError) as error:
            raise click.ClickException(str(error)) from None
        click.echo(f"commands: {SCRIPT_HELP}")
        async with asyncio.TaskGroup() as group:
            runner = group.create_task(board.run(), name="virtual board")
            group.create_task(run_script(runner, board_command(board)), name="script")

    with stdin_restored(), contextlib.suppress(asyncio.CancelledError):
        _run(main)


def board_command(board: Any) -> Callable[[str], bool]:
    """One stdin line to the virtual board (``help`` lists them); False after ``quit``."""

    def handle(text: str) -> bool:
        if text in ("help", "?"):
            from bench.virtual_board import SCRIPT_HELP

            click.echo(f"commands: {SCRIPT_HELP}")
            return True
        click.echo(board.execute(text))
        return text != "quit"

    return handle


def _board_identity(state_dir: Path, device_id: str) -> Any:
    """The device's identity from the bench PKI when there is one, else a throwaway one."""
    from simulators.identity import DeviceIdentity, self_signed_identity

    if (state_dir / "pki" / "ca.crt").exists():
        from bench.pki import Pki

        pair = Pki.ensure(state_dir / "pki").device(device_id)
        return DeviceIdentity.from_files(device_id, pair.cert, pair.key)
    return self_signed_identity(device_id)


# -- conformance ---------------------------------------------------------------------------


@click.command()
@click.option("--port", "selector", help="Port path, USB serial number, USB location, or auto.")
@file_option(
    "--capture",
    exists=True,
    help="A capture file (raw bytes read from a port) instead of a port.",
)
@click.option(
    "--duration",
    "duration_s",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    help="Seconds to listen on the port.",
)
@click.option("--board", type=BOARD_CHOICES, help="Board kind (overrides the USB match).")
@click.option("--baud", type=int, help="Baud rate (default: the board profile's).")
@file_option(
    "--save-capture",
    help="Also write the raw bytes read from the port to this file.",
)
@file_option(
    "--json",
    "json_path",
    help="Also write the report as JSON (for CI artefacts).",
)
def conformance(  # noqa: PLR0917 - click passes options positionally
    selector: str | None,
    capture: Path | None,
    duration_s: float,
    board: str | None,
    baud: int | None,
    save_capture: Path | None,
    json_path: Path | None,
) -> None:
    """Check a board's frames against the contract; exits 1 on violations (firmware CI)."""
    if (selector is None) == (capture is None):
        raise click.UsageError("give either --port PATH or --capture FILE")
    if capture is not None:
        report = check_capture(capture.read_bytes())
        click.echo(f"capture {capture}: {capture.stat().st_size} bytes")
    else:
        assert selector is not None
        report = _run(lambda: _listen(selector, board, baud, duration_s, save_capture)).report
    conformance_verdict(report, json_path)


def conformance_verdict(report: ConformanceReport, json_path: Path | None) -> None:
    """Print the report (and write it as JSON if asked); exit 1 when the board failed."""
    click.echo(report.render())
    if json_path is not None:
        json_path.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    if not report.passed:
        sys.exit(1)


def echo_violations(check: ConformanceCheck, data: bytes, at_s: float) -> None:
    """Feed what the board said to ``check``; print each violation as it is found."""
    for item in check.feed(data, at_s=at_s):
        if isinstance(item, Violation):
            click.echo(f"!! {item.one_line()}")


async def _listen(
    selector: str,
    board: str | None,
    baud: int | None,
    duration_s: float,
    save_capture: Path | None,
) -> ConformanceCheck:
    port, profile, _ = resolve_port(selector, board)
    link = await SerialLink.open(port.device, profile, baud)
    check = ConformanceCheck()
    loop = asyncio.get_running_loop()
    click.echo(f"listening on {port.device} for {duration_s:g} s")
    sink = save_capture.open("wb") if save_capture else None
    try:
        deadline = loop.time() + duration_s
        while loop.time() < deadline:
            try:
                data = await link.read()
            except PortError as error:
                click.echo(
                    f"port lost after {duration_s - (deadline - loop.time()):.1f} s: {error}"
                )
                break
            if not data:
                continue
            if sink:
                sink.write(data)
            echo_violations(check, data, loop.time())
        check.finish()
        return check
    finally:
        if sink:
            sink.close()
        await link.aclose()
