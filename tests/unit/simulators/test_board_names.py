"""One set of board names: simulators, hardware profiles and every command agree."""

import pytest
from click.testing import CliRunner

from bench.cli import cli
from hardware.profiles import BOARD_KINDS as PROFILE_FAMILIES
from simulators.board_names import BoardKind, board_name_problem, parse_board
from simulators.boards import BOARDS


def test_every_board_has_a_model_and_a_usb_profile_family() -> None:
    assert {kind.value for kind in BoardKind} == set(BOARDS)
    assert {kind.family for kind in BoardKind} == set(PROFILE_FAMILIES)


@pytest.mark.parametrize(
    ("old", "new"),
    [("door", "stm32f401-door"), ("env", "esp32s3-env"), ("nrf52840", "nrf52840-sentinel")],
)
def test_retired_names_are_refused_with_the_name_to_write(old: str, new: str) -> None:
    problem = board_name_problem(old)
    assert problem is not None and f"is now called {new}" in problem
    with pytest.raises(ValueError, match=new):
        parse_board(old)
    assert parse_board(new) is BoardKind(new)


@pytest.mark.parametrize(
    "argv",
    [
        ["virtual-board", "--board", "door", "--id", "x-1"],
        ["bridge", "--board", "stm32f401", "--port", "/dev/null"],
        ["battery", "--board", "sentinel", "--days", "1"],
    ],
)
def test_every_command_refuses_a_retired_name_with_a_hint(argv: list[str]) -> None:
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code != 0
    assert "is now called" in result.output + str(result.exception)
