"""``aurora-bench wan``: act on the emulated WAN of a running ``aurora-bench up --wan``.

``cut`` drops every packet between the sites (both keep running and notice by themselves),
``restore`` carries them again, ``set "delay=80ms loss=2%"`` reshapes the link and
``stats`` prints the conditions and packet counts. The link is found through
``<state-dir>/wan.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from bench.cli_options import state_dir_option
from bench.errors import BenchError
from bench.wan import control
from bench.wan.conditions import parse_conditions
from bench.wan.provider import WAN_FILE


def wan_info(state_dir: Path) -> dict[str, Any]:
    """``<state>/wan.json`` of a running WAN bench (clear error when none runs)."""
    path = state_dir / WAN_FILE
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise BenchError(
            f"no {path}: start the sites with `aurora-bench up --sites a,b --wan ...` "
            "(or give its --state-dir)"
        ) from None
    except (OSError, ValueError) as error:
        raise BenchError(f"{path}: unreadable ({error})") from None
    if not isinstance(info, dict):
        raise BenchError(f"{path}: not a JSON object")
    return info


def control_path(state_dir: Path) -> Path:
    """The link's control socket, from ``wan.json``."""
    try:
        return Path(wan_info(state_dir)["control"])
    except (KeyError, TypeError) as error:
        raise BenchError(f"{state_dir / WAN_FILE}: no control socket ({error})") from None


def _show(stats: dict[str, object]) -> None:
    click.echo(json.dumps(stats, indent=2))


@click.group(name="wan")
def wan() -> None:
    """Cut, restore or reshape the emulated WAN link of `aurora-bench up --wan`."""


@wan.command(name="cut")
@state_dir_option()
def cut(state_dir: Path) -> None:
    """Drop every packet between the sites (and those in flight) until `restore`."""
    _show(control.cut(control_path(state_dir)))


@wan.command(name="restore")
@state_dir_option()
def restore(state_dir: Path) -> None:
    """Carry packets again with the link's conditions."""
    _show(control.restore(control_path(state_dir)))


@wan.command(name="set")
@click.argument("conditions")
@state_dir_option()
def set_(conditions: str, state_dir: Path) -> None:
    """New conditions, e.g. "delay=80ms jitter=5ms loss=2%" (a cut link stays cut)."""
    _show(control.set_conditions(control_path(state_dir), parse_conditions(conditions)))


@wan.command(name="stats")
@state_dir_option()
def stats(state_dir: Path) -> None:
    """The link's conditions and the packets passed and dropped each way."""
    _show(control.stats(control_path(state_dir)))
