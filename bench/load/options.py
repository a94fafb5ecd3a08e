"""The options of a load run, spelled once: :class:`LoadOptions`.

Each field says its default, its help, its ``--aurora-*`` locust flag (derived from the field
name) and, when ``aurora-bench load`` shows it, its CLI flag and click type. From that one
table the class adds its arguments to locust's parser, reads them back from locust's parsed
options, renders the locust argument list, and decorates the click command. Locust and click
are not imported here: this module is loaded by both sides (the locust processes and the CLI)
and stays free of gevent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import click

from bench.errors import BenchError
from bench.load.profiles import parse_board_mix

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_BOARDS = "esp32s3=5,nrf52840=3,stm32f401=2"
_ID_PREFIX = re.compile(r"[A-Za-z0-9_-]{1,40}")


class LoadOptionsError(BenchError):
    """An option value that cannot be used; the message names the flag and what to write."""


@dataclass(frozen=True, slots=True)
class _Flag:
    help: str
    #: Flag of ``aurora-bench load`` (None: locust only, or derived by the command).
    cli: str | None = None
    click_type: Any = None
    required: bool = False


def _flag(help_text: str, **cli: Any) -> dict[str, _Flag]:
    return {"flag": _Flag(help_text, **cli)}


def _optional(kind: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value in (None, "") else kind(value)


#: How a value read back from locust becomes the field's type. Locust hands options over as
#: strings from the web UI and as given from argparse; both go through these.
_PARSE: dict[str, Callable[[Any], Any]] = {
    "state_dir": Path,
    "site": str,
    "device_rate": float,
    "qos0_share": float,
    "messages": int,
    "publish_s": float,
    "drain_s": float,
    "boards": str,
    "id_prefix": str,
    "summary": _optional(Path),
    "series": _optional(Path),
    "mqtt_host": _optional(str),
    "mqtt_port": _optional(int),
    "redis_url": _optional(str),
    "unlock_timeout_s": float,
}


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """What every device of a load run does, and where it sends it."""

    state_dir: Path = field(
        default=Path(".bench"),
        metadata=_flag(
            "State directory of the running bench (aurora-bench up).",
            cli="--state-dir",
            click_type=click.Path(path_type=Path, file_okay=False),
        ),
    )
    site: str = field(default="a", metadata=_flag("Site to load.", cli="--site"))
    #: ``aurora-bench load`` derives it: ``--rate / --devices``.
    device_rate: float = field(default=1.0, metadata=_flag("Messages per second of each device."))
    qos0_share: float = field(
        default=0.0,
        metadata=_flag(
            "Share of telemetry sent at QoS 0 (status and badges are always QoS 1).",
            cli="--qos0-share",
            click_type=click.FloatRange(0, 1),
        ),
    )
    messages: int = field(
        default=0,
        metadata=_flag(
            "Stop each device after this many messages (0: no cap).",
            cli="--messages",
            click_type=click.IntRange(min=0),
        ),
    )
    publish_s: float = field(
        default=60.0,
        metadata=_flag(
            "Seconds each device publishes (after it connected).",
            cli="--duration",
            click_type=click.FloatRange(min=0, min_open=True),
            required=True,
        ),
    )
    drain_s: float = field(
        default=5.0,
        metadata=_flag(
            "Seconds to wait for stragglers before counting them lost.",
            cli="--drain",
            click_type=click.FloatRange(min=0),
        ),
    )
    boards: str = field(
        default=DEFAULT_BOARDS, metadata=_flag("Board mix as board=weight pairs.", cli="--boards")
    )
    id_prefix: str = field(
        default="load",
        metadata=_flag(
            "Device ids are PREFIX-<board>-<worker><n>: fixed and reproducible between runs.",
            cli="--id-prefix",
        ),
    )
    summary: Path | None = field(default=None, metadata=_flag("Write the run summary JSON here."))
    series: Path | None = field(
        default=None, metadata=_flag("Write the per-second series JSON (the HTML report) here.")
    )
    mqtt_host: str | None = field(
        default=None, metadata=_flag("Override the broker host of bench.json.")
    )
    mqtt_port: int | None = field(
        default=None, metadata=_flag("Override the broker port of bench.json.")
    )
    redis_url: str | None = field(
        default=None, metadata=_flag("Override the site's Redis URL of bench.json.")
    )
    unlock_timeout_s: float = field(
        default=5.0, metadata=_flag("Longest wait for the unlock after a granted badge.")
    )

    def __post_init__(self) -> None:
        if not _ID_PREFIX.fullmatch(self.id_prefix):
            raise LoadOptionsError(
                f"--id-prefix {self.id_prefix!r}: use 1-40 of A-Z a-z 0-9 _ - (device ids)"
            )
        try:
            parse_board_mix(self.boards)
        except ValueError as error:
            raise LoadOptionsError(f"--boards: {error}") from None
        if not 0 <= self.qos0_share <= 1:
            raise LoadOptionsError(f"--qos0-share {self.qos0_share:g}: give a share in 0..1")
        if self.device_rate <= 0:
            raise LoadOptionsError(f"device rate {self.device_rate:g}: must be > 0 msg/s")

    @property
    def board_mix(self) -> dict[str, int]:
        """The board mix as board -> weight."""
        return parse_board_mix(self.boards)

    # -- locust ---------------------------------------------------------------------------

    @staticmethod
    def locust_flag(name: str) -> str:
        """The locust flag of field ``name`` (``publish_s`` -> ``--aurora-publish-s``)."""
        return "--aurora-" + name.replace("_", "-")

    @classmethod
    def add_locust_arguments(cls, parser: Any) -> None:
        """Add the ``--aurora-*`` arguments to locust's parser (``init_command_line_parser``).

        Defaults are strings so the web UI's form edits them like any other option.
        """
        group = parser.add_argument_group("aurora-bench load")
        for spec in fields(cls):
            default = "" if spec.default is None else str(spec.default)
            group.add_argument(
                cls.locust_flag(spec.name), default=default, help=spec.metadata["flag"].help
            )

    @classmethod
    def from_locust(cls, parsed: Any) -> LoadOptions:
        """From locust's parsed options (``environment.parsed_options``)."""
        try:
            return cls(
                **{
                    spec.name: _PARSE[spec.name](getattr(parsed, "aurora_" + spec.name))
                    for spec in fields(cls)
                }
            )
        except LoadOptionsError as error:
            # The checks name the CLI flags; a locust user typed the --aurora-* ones.
            message = str(error)
            for spec in fields(cls):
                cli = spec.metadata["flag"].cli
                if cli is not None and message.startswith(cli):
                    message = cls.locust_flag(spec.name) + message.removeprefix(cli)
            raise LoadOptionsError(message) from None
        except (TypeError, ValueError) as error:
            raise LoadOptionsError(f"locust options: {error}") from None

    def locust_arguments(self) -> list[str]:
        """This run's options as locust arguments (every option, so a log shows them all)."""
        arguments: list[str] = []
        for spec in fields(self):
            value = getattr(self, spec.name)
            if value is None:
                continue
            text = f"{value:g}" if isinstance(value, float) else str(value)
            arguments += [self.locust_flag(spec.name), text]
        return arguments

    # -- click ----------------------------------------------------------------------------

    @classmethod
    def click_options(cls, command: F) -> F:
        """Decorate a click command with every option that has a CLI flag."""
        for spec in reversed(fields(cls)):
            flag: _Flag = spec.metadata["flag"]
            if flag.cli is None:
                continue
            # click >= 8.3 treats an explicit ``default=None`` as a value: pass none at all
            # for a required option, or its "missing" error never shows.
            extra: dict[str, Any] = {} if flag.required else {"default": spec.default}
            command = click.option(
                flag.cli,
                spec.name,
                type=flag.click_type,
                required=flag.required,
                show_default=not flag.required,
                help=flag.help,
                **extra,
            )(command)
        return command

    @classmethod
    def from_cli(cls, values: Mapping[str, Any], **derived: Any) -> LoadOptions:
        """From the keyword arguments click passed the command, plus the ``derived`` fields."""
        cli = {
            spec.name: values[spec.name]
            for spec in fields(cls)
            if spec.metadata["flag"].cli is not None
        }
        return cls(**cli, **derived)
