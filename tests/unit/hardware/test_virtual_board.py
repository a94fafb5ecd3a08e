"""A simulated door on a PTY, driven through pyserial like a real board (no servers)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from backend.contract import CommandMessage, CommandVerb, MessageKind
from backend.contract.messages import now_rfc3339
from bench.virtual_board import VirtualBoard
from hardware.framing import Frame, FrameDecoder, LogLine, Violation, encode_frame
from hardware.link import SerialLink
from hardware.profiles import GENERIC
from tests.unit.hardware.boards import running_board


async def frames_until(link: SerialLink, decoder: FrameDecoder, kind: MessageKind) -> list[object]:
    seen: list[object] = []
    async with asyncio.timeout(5):
        while not any(isinstance(i, Frame) and i.kind is kind for i in seen):
            seen += decoder.feed(await link.read())
    return seen


async def test_door_speaks_frames_and_obeys_unlock(tmp_path: Path) -> None:
    said: list[str] = []
    async with running_board(
        "stm32f401-door", "vdoor-u1", tmp_path / "d.tty", heartbeat_s=0.2, say=said.append
    ) as board:
        link = await SerialLink.open(str(tmp_path / "d.tty"), GENERIC)
        decoder = FrameDecoder()
        await frames_until(link, decoder, MessageKind.STATUS)
        assert board.execute("swipe 0455AF21") == "ok swipe 0455AF21"
        seen = await frames_until(link, decoder, MessageKind.BADGE_EVENT)
        badge = next(i for i in seen if isinstance(i, Frame) and i.kind is MessageKind.BADGE_EVENT)
        assert badge.device_id == "vdoor-u1"

        unlock = CommandMessage(
            verb=CommandVerb.UNLOCK, request_id="r1", issued_at=now_rfc3339(), duration_s=1
        )
        await link.write(encode_frame(MessageKind.COMMAND, unlock))
        seen = await frames_until(link, decoder, MessageKind.TELEMETRY)
        assert any(isinstance(i, LogLine) and "rx: command unlock" in i.text for i in seen)
        assert board.lock_state == "unlocked"
        assert "lock unlocked" in said

        board.execute("raw @aurora status {}")
        async with asyncio.timeout(5):
            while not any(isinstance(i, Violation) for i in seen):
                seen += decoder.feed(await link.read())
        await link.aclose()
    assert not (tmp_path / "d.tty").exists()  # the link goes with the board


@pytest.mark.parametrize(
    ("board", "line", "reply"),
    [
        ("stm32f401-door", "swipe", "error: usage: swipe UID"),
        ("stm32f401-door", "swipe nothex", "error: 1 validation error"),
        ("esp32s3-env", "swipe 0455AF21", "error: a esp32s3-env board has no badge reader"),
        (
            "stm32f401-door",
            "fault offline duration_s",
            "error: fault parameter 'duration_s' is not key=value",
        ),
        ("stm32f401-door", "fault warp", "error: unknown fault 'warp'"),
        ("stm32f401-door", "dance", "error: unknown command 'dance'; commands: swipe UID"),
        ("stm32f401-door", "", "ok"),
    ],
)
def test_script_errors_say_what_would_work(
    tmp_path: Path, board: str, line: str, reply: str
) -> None:
    vb = VirtualBoard(board, "vb-1", tmp_path / "x.tty", say=lambda _: None)
    assert vb.execute(line).startswith(reply)


def test_unknown_board_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="choose one of esp32s3-env, stm32f401-access"):
        VirtualBoard("toaster", "vb-1", tmp_path / "x.tty")
    # the names of earlier versions get the name to write instead
    with pytest.raises(ValueError, match="'door' is now called stm32f401-door"):
        VirtualBoard("door", "vb-1", tmp_path / "x.tty")


async def test_conformance_cli_on_a_live_virtual_board(tmp_path: Path) -> None:
    """`aurora-bench conformance --port` in its own process, timing a real heartbeat."""
    async with running_board("esp32s3-env", "venv-c1", tmp_path / "e.tty", heartbeat_s=0.3):
        report = tmp_path / "report.json"
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench",
            "conformance",
            "--port",
            str(tmp_path / "e.tty"),
            "--duration",
            "1.5",
            "--json",
            str(report),
            "--save-capture",
            str(tmp_path / "cap"),
            stdout=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(30):
            output, _ = await process.communicate()
        text = output.decode()
        assert process.returncode == 0, text
        assert "PASS" in text
        data = json.loads(report.read_text())
        assert data["status_fields"]["board_family"] == "esp32s3"
        assert data["heartbeat"]["intervals"] >= 2
        assert abs(data["heartbeat"]["mean_s"] - 0.3) < 0.1
        assert b"@aurora status" in (tmp_path / "cap").read_bytes()
