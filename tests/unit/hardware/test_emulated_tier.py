"""The emulated tier's pure parts: the PN532 model and codec, QEMU's command line and PTY
lines, and the firmware's own C unit tests (built with the host gcc)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardware.emulator import EmulatorSpec, parse_ptys, qemu_command
from hardware.pn532 import (
    ACK,
    ERROR_FRAME,
    IN_LIST_PASSIVE_TARGET,
    TFI_HOST,
    TFI_PN532,
    Frame,
    FrameDecoder,
    Pn532Model,
    build_frame,
)

POLL = build_frame(TFI_HOST, bytes([IN_LIST_PASSIVE_TARGET, 0x01, 0x00]))


def test_the_poll_frame_is_the_datasheets() -> None:
    assert bytes.fromhex("0000ff04fcd44a0100e100") == POLL


def test_no_card_then_a_card_once() -> None:
    model = Pn532Model()
    assert model.feed(POLL) == ACK + build_frame(TFI_PN532, bytes([0x4B, 0x00]))
    model.present(bytes.fromhex("04A1B2C3"))
    reply = FrameDecoder().feed(model.feed(POLL))
    assert reply[0] == ACK
    frame = reply[1]
    assert isinstance(frame, Frame)
    assert frame.data == bytes.fromhex("4b01010004080404a1b2c3")
    assert model.waiting == 0
    assert model.feed(POLL).endswith(build_frame(TFI_PN532, bytes([0x4B, 0x00])))


def test_unknown_commands_get_the_syntax_error_frame_and_bad_frames_are_counted() -> None:
    model = Pn532Model()
    assert model.feed(build_frame(TFI_HOST, bytes([0x02]))) == ACK + ERROR_FRAME
    broken = bytearray(POLL)
    broken[-2] ^= 0xFF
    assert model.feed(bytes(broken)) == b""
    assert model.bad_frames == 1


def test_uid_lengths_are_iso14443a_only() -> None:
    with pytest.raises(ValueError, match="4, 7 or 10 bytes"):
        Pn532Model().present(b"\x01\x02\x03")


@given(st.binary(max_size=300), st.integers(1, 7))
def test_decoder_never_raises_and_any_chunking_gives_the_same_frames(
    noise: bytes, cut: int
) -> None:
    stream = noise + POLL + noise
    whole = FrameDecoder().feed(stream)
    chunked: list[Frame | bytes] = []
    decoder = FrameDecoder()
    for i in range(0, len(stream), cut):
        chunked += decoder.feed(stream[i : i + cut])
    assert chunked == whole
    assert Frame(TFI_HOST, bytes([IN_LIST_PASSIVE_TARGET, 1, 0])) in whole


def test_qemu_starts_paused_with_two_ptys_and_the_id_on_its_command_line() -> None:
    command = qemu_command(EmulatorSpec(Path("fw.elf"), "door-7"), "/usr/bin/qemu", Path("/q"))
    assert command[:3] == ["/usr/bin/qemu", "-M", "netduinoplus2"]
    assert "-S" in command
    assert command.count("pty") == 2
    assert "enable=on,target=native,arg=firmware,arg=door-7" in command


def test_pty_lines() -> None:
    text = (
        "char device redirected to /dev/pts/4 (label serial0)\n"
        "noise\nchar device redirected to /dev/pts/9 (label serial1)\n"
    )
    assert parse_ptys(text) == {"serial0": "/dev/pts/4", "serial1": "/dev/pts/9"}


@pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler")
def test_the_firmwares_c_unit_tests_pass(tmp_path: Path) -> None:
    firmware = Path(__file__).parents[3] / "hardware" / "firmware"
    result = subprocess.run(
        ["make", "-C", str(firmware), f"BUILD={tmp_path}", "host-test"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed, 0 failed" in result.stdout
