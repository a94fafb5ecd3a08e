"""LoadOptions: one table gives the click options, the locust arguments and their parsing."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from bench.load.options import LoadOptions, LoadOptionsError


def _locust_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    LoadOptions.add_locust_arguments(parser)
    return parser


def test_locust_arguments_round_trip_through_locusts_parser() -> None:
    options = LoadOptions(
        state_dir=Path("/srv/bench"),
        site="b",
        device_rate=0.25,
        qos0_share=0.5,
        messages=7,
        publish_s=12.5,
        boards="stm32f401=1",
        id_prefix="ci",
        summary=Path("/tmp/s.json"),
        mqtt_port=8883,
    )
    parsed = _locust_parser().parse_args(options.locust_arguments())
    assert LoadOptions.from_locust(parsed) == options


def test_locust_defaults_are_the_dataclass_defaults() -> None:
    # Locust's web UI hands every value back as a string; the defaults parse the same way.
    parsed = _locust_parser().parse_args([])
    assert LoadOptions.from_locust(parsed) == LoadOptions()
    assert parsed.aurora_publish_s == "60.0"
    assert parsed.aurora_mqtt_host == ""


def test_every_field_has_a_locust_flag() -> None:
    flags = {action.dest for action in _locust_parser()._actions}
    assert {f"aurora_{name}" for name in LoadOptions.__dataclass_fields__} <= flags


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"boards": "esp8266=1"}, "--boards: unknown board 'esp8266'"),
        ({"id_prefix": "a b"}, "--id-prefix 'a b'"),
        ({"qos0_share": 2.0}, "--qos0-share 2"),
        ({"device_rate": 0.0}, "must be > 0"),
    ],
)
def test_bad_values_name_the_flag(values: dict[str, Any], message: str) -> None:
    with pytest.raises(LoadOptionsError, match=message):
        LoadOptions(**values)


def test_click_options_build_the_same_options() -> None:
    seen: dict[str, LoadOptions] = {}

    @click.command()
    @LoadOptions.click_options
    def command(**values: Any) -> None:
        seen["options"] = LoadOptions.from_cli(values, device_rate=2.0)

    result = CliRunner().invoke(
        command, ["--duration", "3", "--qos0-share", "0.5", "--site", "b", "--drain", "1"]
    )
    assert result.exit_code == 0, result.output
    assert seen["options"] == LoadOptions(
        site="b", device_rate=2.0, qos0_share=0.5, publish_s=3.0, drain_s=1.0
    )
    missing = CliRunner().invoke(command, [])
    assert missing.exit_code == 2
    assert "--duration" in missing.output
    out_of_range = CliRunner().invoke(command, ["--duration", "1", "--qos0-share", "3"])
    assert out_of_range.exit_code == 2


def test_locust_errors_name_the_locust_flag() -> None:
    parsed = _locust_parser().parse_args(["--aurora-boards", "esp8266=1"])
    with pytest.raises(LoadOptionsError, match=r"^--aurora-boards: unknown board 'esp8266'"):
        LoadOptions.from_locust(parsed)
    parsed = _locust_parser().parse_args(["--aurora-messages", "many"])
    with pytest.raises(LoadOptionsError, match="locust options: invalid literal"):
        LoadOptions.from_locust(parsed)
