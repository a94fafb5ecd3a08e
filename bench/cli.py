"""The ``aurora-bench`` command line.

Subcommands live in their own modules (``bench/cmd_*.py``) and are imported only when
called, so ``aurora-bench --help`` stays fast and one broken subsystem cannot break the
others. A :class:`~bench.errors.BenchError` ends the command with its message and exit
code 2 instead of a traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from bench.errors import BenchError

#: name -> (module, attribute, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "up": ("bench.cmd_up", "up", "Start services and backends for one or two sites."),
    "certs": ("bench.cmd_certs", "certs", "Issue certificates from the bench PKI."),
    "fleet": ("bench.cmd_fleet", "fleet", "Run a simulated fleet against a running site."),
    "battery": ("bench.cmd_fleet", "battery", "Project a board's battery life."),
    "run": ("bench.cmd_scenario", "run", "Run scenario files or folders."),
    "scenario": ("bench.cmd_scenario", "scenario", "Check scenario files, print the schema."),
    "demo": ("bench.cmd_demo", "demo", "Two live sites, a fleet and the scripted story."),
    "boards": ("bench.cmd_hardware", "boards", "List serial boards plugged in."),
    "bridge": ("bench.cmd_hardware", "bridge", "Bridge a real board to a site."),
    "virtual-board": ("bench.cmd_hardware", "virtual_board", "A simulated board on a PTY."),
    "conformance": ("bench.cmd_hardware", "conformance", "Check a board's frames."),
    "emulate": ("bench.cmd_emulate", "emulate", "Run a board's firmware under QEMU, bridged."),
    "load": ("bench.cmd_load", "load", "Load a site with locust."),
    "sentinel": ("bench.cmd_sentinel", "sentinel", "Sentinel clients, watch, capacity plan."),
    "token": ("bench.cmd_token", "token", "Print a JWT from the bench's token issuer."),
    "wan": ("bench.cmd_wan", "wan", "Cut, restore or reshape the link of `up --wan`."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attribute, help_text = entry
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise

            @click.command(name=cmd_name, help=f"{help_text} (not available in this build)")
            def missing() -> None:
                raise click.ClickException(f"`{cmd_name}` is not available in this build")

            return missing
        command: click.Command = getattr(module, attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help text comes from the table so listing commands imports nothing.
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(package_name="aurora-bench")
def cli() -> None:
    """aurora-bench: a hardware-in-the-loop test bench for the AuroraSOC CPS backend."""


class _QuietSslEof(logging.Filter):
    """Drop asyncio's "returning true from eof_received() has no effect when using ssl".

    nats-py upgrades a plain asyncio stream to TLS, and the stream protocol then answers
    True at EOF; asyncio warns once per closed TLS connection. It means nothing to a user
    and buried `aurora-bench up --sentinel`'s own output under its readiness checks.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "eof_received()" not in record.getMessage()


def main(argv: list[str] | None = None) -> Any:
    """Entry point: run the CLI, turning bench errors into one clear line."""
    logging.getLogger("asyncio").addFilter(_QuietSslEof())
    try:
        return cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except BenchError as error:
        click.secho(f"error: {error}", fg="red", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
