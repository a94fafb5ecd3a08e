"""``aurora-bench fleet`` (a simulated fleet against a running site) and
``aurora-bench battery`` (the coin-cell sentinel's life, MQTT against HTTP)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from bench.cli_options import file_option, state_dir_option
from bench.errors import BenchError


@click.command()
@file_option(
    "--spec",
    "spec_path",
    required=True,
    help="Fleet spec YAML (see scenarios/fleets/).",
)
@state_dir_option("State dir of a bench started with `aurora-bench up`.")
@click.option("--site", default="a", show_default=True, help="Site to connect to.")
@click.option(
    "--speed", type=float, default=1.0, show_default=True, help="Simulated seconds per second."
)
@click.option(
    "--duration", type=float, default=None, help="Stop after this many simulated seconds."
)
def fleet(
    spec_path: Path, state_dir: Path, site: str, speed: float, duration: float | None
) -> None:
    """Run a simulated fleet against a running site, one live line per board type.

    Exits 1 when a device never connected, nothing was sent or a device runner died.
    """
    from bench.fleet import FleetVerdict, run_fleet

    verdicts: list[FleetVerdict] = []
    try:
        asyncio.run(
            run_fleet(
                spec_path,
                state_dir,
                site=site,
                speed=speed,
                duration_s=duration,
                echo=click.echo,
                verdicts=verdicts,
            )
        )
    except KeyboardInterrupt:
        click.echo("stopped")
    if any(not verdict.passed for verdict in verdicts):
        raise SystemExit(1)


@click.command()
@click.option(
    "--board", default="nrf52840-sentinel", show_default=True, help="Battery-powered board."
)
@click.option("--days", type=float, default=30.0, show_default=True, help="Simulated days.")
@click.option(
    "--interval", type=float, default=60.0, show_default=True, help="Wake interval, seconds."
)
@click.option(
    "--transport",
    type=click.Choice(["mqtt", "http"]),
    default="mqtt",
    show_default=True,
    help="How the node sends in the simulation.",
)
@click.option("--qos", type=click.IntRange(0, 1), default=1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--capacity-mah", type=float, default=225.0, show_default=True, help="Cell capacity (CR2032)."
)
def battery(
    *,
    board: str,
    days: float,
    interval: float,
    transport: str,
    qos: int,
    seed: int,
    capacity_mah: float,
) -> None:
    """Project a board's battery life in virtual time; compare MQTT and HTTP per message."""
    from simulators.errors import SimulatorError
    from simulators.projection import project_battery, render_projection

    if days <= 0 or interval <= 0:
        raise BenchError("--days and --interval must be > 0")
    try:
        projection = project_battery(
            board,
            days=days,
            interval_s=interval,
            transport=transport,
            qos=qos,
            seed=seed,
            capacity_mah=capacity_mah,
        )
    except SimulatorError as error:
        raise BenchError(str(error)) from None
    click.echo(render_projection(projection))
