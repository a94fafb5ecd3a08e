"""``python -m bench.perf`` (``make bench``): measure, print one table, write results.json."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bench.cli_options import file_option, state_dir_option
from bench.errors import BenchError
from bench.perf.html import write_html
from bench.perf.runner import (
    DEFAULT_DEVICES,
    DEFAULT_RESULTS,
    DEFAULT_STATE_DIR,
    MEASUREMENTS,
    PerfConfig,
    render_figures,
    run,
)


@click.command()
@click.option("--quick", is_flag=True, help="Tiny sizes: checks the pipeline in seconds.")
@click.option(
    "--profile",
    is_flag=True,
    help="Record the backend with py-spy during the ingest blast; print where time goes.",
)
@click.option(
    "--only",
    default="",
    help="Comma-separated measurements: " + ", ".join(m.name for m in MEASUREMENTS) + ".",
)
@click.option(
    "--devices",
    type=click.IntRange(min=1, max=100_000),
    default=None,
    help=f"Simulated mTLS devices to connect in one process [default: {DEFAULT_DEVICES:,}; "
    "the goal is 10,000: --devices 10000].",
)
@click.option(
    "--ramp-budget",
    type=click.FloatRange(min=1.0),
    default=None,
    help="Seconds the devices ramp may take; what is connected by then is the figure "
    "[default: 60, or 1 s per 50 devices when more].",
)
@state_dir_option(
    "The bench's directory: its site state is started afresh each run, its PKI kept.",
    default=DEFAULT_STATE_DIR,
)
@file_option(
    "--results",
    default=DEFAULT_RESULTS,
    show_default=True,
)
def main(
    *,
    quick: bool,
    profile: bool,
    only: str,
    devices: int | None,
    ramp_budget: float | None,
    state_dir: Path,
    results: Path,
) -> None:
    """Run every measurement against a bench started for the purpose."""
    from dataclasses import replace

    from rich.console import Console

    config = PerfConfig.tiny() if quick else PerfConfig()
    config = replace(config, profile=profile, output_dir=results.parent)
    if devices is not None:
        config = replace(config, devices=devices)
    if ramp_budget is not None:
        config = replace(config, devices_ramp_budget_s=ramp_budget)
    selected = [name.strip() for name in only.split(",") if name.strip()] or None
    try:
        figures, failures = run(config, state_dir=state_dir, results=results, selected=selected)
    except BenchError as error:
        click.secho(f"error: {error}", fg="red", err=True)
        sys.exit(2)
    console = Console(width=None if sys.stdout.isatty() else 140)
    console.print(render_figures(figures, failures))
    page = write_html(figures, failures, results.with_suffix(".html"))
    console.print(f"results: {results}  page: {page}")
    for failure in failures:
        click.secho(f"failed: {failure}", fg="red", err=True)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
