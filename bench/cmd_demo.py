"""``aurora-bench demo``: two live sites, a mixed fleet, and the scripted story, narrated."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import click

from bench.cli_options import file_option
from bench.errors import BenchError

#: Where the story lives: the working directory's ``scenarios/`` first (a checkout), then
#: the one next to the installed package.
DEMO_FILE = Path("scenarios") / "demo.yaml"


def demo_file() -> Path:
    """The demo scenario to play."""
    for candidate in (Path.cwd() / DEMO_FILE, Path(__file__).resolve().parents[1] / DEMO_FILE):
        if candidate.is_file():
            return candidate
    raise BenchError(f"{DEMO_FILE} not found: run the demo from the aurora-bench checkout")


@click.command()
@file_option(
    "--scenario",
    "scenario_path",
    help="play another story (default: scenarios/demo.yaml)",
)
@click.option("--pace", type=float, default=1.0, show_default=True, help="seconds between steps")
@click.option("--state-dir", type=click.Path(path_type=Path), default=Path(".bench/demo"))
@click.option(
    "--report",
    type=click.Path(path_type=Path),
    help="write FILE.html or FILE.json (default: <state-dir>/report.html)",
)
@click.option(
    "--hold/--no-hold",
    default=True,
    show_default=True,
    help="keep the sites (and their consoles) running after the story until Ctrl-C; "
    "--no-hold ends at once (CI)",
)
def demo(
    scenario_path: Path | None, pace: float, state_dir: Path, report: Path | None, hold: bool
) -> None:
    """Bring up two sites and a mixed fleet, play the story, narrate it live."""
    from rich.console import Console

    from bench.scenario.loader import load_scenario
    from bench.scenario.narration import Narrator
    from bench.scenario.report import write_report
    from bench.scenario.runner import BenchPool, run_scenario

    if pace < 0:
        raise click.BadParameter("must be >= 0", param_hint="--pace")
    loaded = load_scenario(scenario_path or demo_file())
    console = Console(highlight=False, soft_wrap=True)
    sites = ", ".join(loaded.scenario.sites)
    console.print(f"[bold]aurora-bench demo[/bold]: {loaded.name} - {loaded.scenario.description}")
    console.print(f"starting sites {sites} (Mosquitto, Redis, NATS, backend each) ...")
    pool = BenchPool(state_dir)
    try:
        began = time.monotonic()
        bench = pool.acquire(loaded.scenario)
        console.print(f"sites up in {time.monotonic() - began:.1f}s:")
        for site_id, site in bench.info.sites.items():
            console.print(
                f"  site {site_id}: API {site.api}  MQTT {site.mqtt.host}:{site.mqtt.port}"
            )
            token = f"#token={site.api_token}" if site.api_token else ""
            console.print(f"  site {site_id} console: [link]{site.api}/{token}[/link]")
        narrator = Narrator(console)
        result = asyncio.run(run_scenario(loaded, bench, narrator, pace_s=pace))
        # The story is over and the sites go away with Ctrl-C: the report is what stays.
        written = write_report(report or state_dir / "report.html", [result])
        narrator.summary([result])
        console.print(f"report: {written}")
        if hold:
            console.print("sites keep running (consoles above); press Ctrl-C to stop them")
            # SIGTERM ends the hold like Ctrl-C, so the sites are stopped, never orphaned.
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    finally:
        console.print("stopping the sites ...")
        pool.close()
    sys.exit(0 if result.passed else 1)
