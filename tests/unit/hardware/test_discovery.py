"""Board profiles and choosing a board by path, serial number or USB location."""

from __future__ import annotations

import pytest
from serial.tools.list_ports_common import ListPortInfo

from hardware.discovery import BoardPort, list_boards, select_board
from hardware.errors import AmbiguousBoardError, BoardNotFoundError
from hardware.profiles import match_profile, profile_for_kind


def port(
    device: str, vid: int | None, pid: int | None, serial: str = "", loc: str = ""
) -> ListPortInfo:
    info = ListPortInfo(device, skip_link_detection=True)
    info.vid, info.pid = vid, pid
    info.serial_number = serial or None
    info.location = loc or None
    return info


@pytest.mark.parametrize(
    ("vid", "pid", "name", "family"),
    [
        (0x303A, 0x1001, "esp32s3", "esp32s3"),
        (0x0483, 0x374B, "stm32f401", "stm32f401"),
        (0x0483, 0x374E, "stm32f401", "stm32f401"),
        (0x1366, 0x1015, "nrf52840", "nrf52840"),
        (0x1366, 0x0105, "nrf52840", "nrf52840"),
        (0x1915, 0x521F, "nrf52840", "nrf52840"),
        (0x10C4, 0xEA60, "unknown", None),
        (0x1A86, 0x7523, "unknown", None),
        (0x0403, 0x6001, "unknown", None),
    ],
)
def test_profiles_match_usb_ids(vid: int, pid: int, name: str, family: str | None) -> None:
    profile = match_profile(vid, pid)
    assert profile is not None
    assert (profile.name, profile.board_family) == (name, family)


def test_unknown_usb_ids_match_nothing() -> None:
    assert match_profile(0x1234, 0x5678) is None
    assert match_profile(None, None) is None


def test_esp32s3_resets_by_pulsing_rts_and_opens_without_reset() -> None:
    profile = profile_for_kind("esp32s3")
    assert [step.rts for step in profile.reset] == [True, False]
    assert not any(step.dtr for step in profile.reset)
    assert (profile.open_dtr, profile.open_rts) == (False, False)
    assert "st-flash" in profile_for_kind("stm32f401").reset_hint


def test_unknown_board_kind_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="choose one of esp32s3, nrf52840, stm32f401"):
        profile_for_kind("arduino")


PORTS = [
    port("/dev/ttyS0", None, None),
    port("/dev/ttyUSB0", 0x10C4, 0xEA60, "0001", "1-1.4:1.0"),
    port("/dev/ttyACM0", 0x303A, 0x1001, "F4:12:FA:00:11:22", "1-1.2:1.0"),
    port("/dev/ttyACM1", 0x0483, 0x374B, "066DFF555185", "1-1.3:1.2"),
]


def test_listing_leaves_out_ports_without_usb_identity_and_puts_known_boards_first() -> None:
    boards = list_boards(PORTS)
    assert [board.device for board in boards] == ["/dev/ttyACM0", "/dev/ttyACM1", "/dev/ttyUSB0"]
    assert boards[0].usb_id == "303a:1001"


def test_select_by_path_serial_number_or_location() -> None:
    boards = list_boards(PORTS)
    assert select_board("/dev/ttyACM1", boards).serial_number == "066DFF555185"
    assert select_board("F4:12:FA:00:11:22", boards).device == "/dev/ttyACM0"
    assert select_board("1-1.4:1.0", boards).device == "/dev/ttyUSB0"


def test_auto_needs_exactly_one_known_board() -> None:
    boards = list_boards(PORTS)
    with pytest.raises(AmbiguousBoardError, match="matches several boards"):
        select_board("auto", boards)
    only = list_boards(PORTS[:3])
    assert select_board("auto", only).device == "/dev/ttyACM0"
    with pytest.raises(BoardNotFoundError, match="no serial ports at all"):
        select_board("auto", [])


def test_unlisted_existing_path_is_a_generic_port(tmp_path: pytest.TempPathFactory) -> None:
    link = tmp_path / "door.tty"  # type: ignore[operator]
    link.write_text("")
    chosen = select_board(str(link), [])
    assert isinstance(chosen, BoardPort)
    assert chosen.profile is not None
    assert chosen.profile.name == "generic"


def test_missing_port_lists_what_is_plugged_in() -> None:
    with pytest.raises(BoardNotFoundError, match=r"/dev/ttyACM0 \(303a:1001"):
        select_board("/dev/ttyACM9", list_boards(PORTS))
