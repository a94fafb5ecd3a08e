"""``aurora-bench run`` and ``aurora-bench scenario check|schema``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from bench.errors import BenchError
from bench.scenario.loader import ScenarioLoadError, iter_scenario_files, load_scenario
from bench.scenario.schema import json_schema


@click.group()
def scenario() -> None:
    """Check scenario files, print the schema."""


@scenario.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def check(paths: tuple[Path, ...]) -> None:
    """Validate scenario files (or folders of them); print `file:line: problem` for each."""
    broken = 0
    files = list(iter_scenario_files(paths))
    if not files:
        raise click.ClickException("no scenario files found in " + ", ".join(map(str, paths)))
    for path in files:
        try:
            loaded = load_scenario(path)
        except ScenarioLoadError as error:
            broken += 1
            for line in error.lines():
                click.secho(line, fg="red", err=True)
            continue
        steps = len(loaded.scenario.steps)
        click.echo(f"{path}: ok ({loaded.name!r}, {steps} step{'s' if steps != 1 else ''})")
    if broken:
        click.secho(f"{broken} of {len(files)} file(s) broken", fg="red", err=True)
        sys.exit(1)


@scenario.command()
def schema() -> None:
    """Print the JSON Schema of scenario files (for editors)."""
    click.echo(json.dumps(json_schema(), indent=2))


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-k", "keyword", default="", help="select scenarios, pytest -k grammar")
@click.option("-m", "markers", default="", help="select scenarios by marker, pytest -m grammar")
@click.option("--junit", type=click.Path(path_type=Path), help="write JUnit XML here")
@click.option(
    "--report",
    "reports",
    multiple=True,
    type=click.Path(path_type=Path),
    help="write a report: FILE.html or FILE.json (repeatable)",
)
@click.option("--list", "listing", is_flag=True, help="list the scenarios, run nothing")
@click.option("-x", "--exitfirst", is_flag=True, help="stop after the first failed scenario")
@click.option("--maxfail", type=click.IntRange(min=1), help="stop after N failed scenarios")
@click.option("--state-dir", type=click.Path(path_type=Path), default=Path(".bench/scenarios"))
@click.option("--db", type=click.Choice(["sqlite", "postgres"]), default="sqlite")
def run(  # noqa: PLR0917 - click passes options positionally
    paths: tuple[Path, ...],
    keyword: str,
    markers: str,
    junit: Path | None,
    reports: tuple[Path, ...],
    listing: bool,
    exitfirst: bool,
    maxfail: int | None,
    state_dir: Path,
    db: str,
) -> None:
    """Run scenario files or folders (searched recursively); exit 0 only if all passed.

    A front for pytest with the aurora-bench plugin: selection, ordering, JUnit XML and
    the HTML/JSON reports are the plugin's, exactly as with `pytest scenarios/`.
    """
    from bench.scenario.front import RunFront, pytest_args

    for report in reports:
        if report.suffix.lower() not in (".html", ".htm", ".json"):
            raise BenchError(f"--report {report}: use a name ending in .html or .json")
    args = pytest_args(
        paths,
        keyword=keyword,
        markers=markers,
        junit=junit,
        reports=reports,
        listing=listing,
        maxfail=1 if exitfirst else maxfail,
        state_dir=state_dir,
        db=db,
    )
    sys.exit(RunFront(listing=listing).main(args, keyword=keyword or markers))
