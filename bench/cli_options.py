"""Click options that several ``aurora-bench`` subcommands share, written once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from bench.benchfile import DEFAULT_STATE_DIR

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def state_dir_option(
    help_text: str = "State directory of `aurora-bench up`.", default: Path = DEFAULT_STATE_DIR
) -> Decorator:
    """``--state-dir DIR`` (default ``.bench``), as a Path."""
    return click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=default,
        show_default=True,
        help=help_text,
    )


def site_option() -> Decorator:
    """``--site ID`` (default ``a``) passed as ``site_id``."""
    return click.option("--site", "site_id", default="a", show_default=True, help="Site to join.")


def file_option(*names: str, exists: bool = False, **attrs: Any) -> Decorator:
    """An option naming a file (not a directory), as a Path; ``exists`` for one it reads."""
    return click.option(
        *names, type=click.Path(exists=exists, dir_okay=False, path_type=Path), **attrs
    )
