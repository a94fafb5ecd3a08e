"""What the hardware tests talk to: a virtual board on a PTY, and the frames a board sends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from backend.contract import MessageKind, StatusMessage, TelemetryMessage
from bench.virtual_board import VirtualBoard
from hardware.framing import encode_frame

# The device type each board family reports in its status.
DEVICE_TYPES = {"stm32f401": "access_control_node", "esp32s3": "environmental_presence"}


@asynccontextmanager
async def running_board(
    board: str,
    device_id: str,
    link: Path,
    *,
    heartbeat_s: float,
    say: Callable[[str], None] = lambda _: None,
) -> AsyncIterator[VirtualBoard]:
    """Virtual ``board`` running, its PTY at ``link`` already there; stopped on the way out."""
    virtual = VirtualBoard(board, device_id, link, heartbeat_s=heartbeat_s, say=say)
    task = asyncio.create_task(virtual.run())
    try:
        async with asyncio.timeout(5):
            while not link.exists():
                await asyncio.sleep(0.01)
        yield virtual
    finally:
        virtual.stopped.set()
        await task


def status_frame(device_id: str, board_family: str) -> bytes:
    """The status frame a board of ``board_family`` sends (firmware 0.1.0, Rust/Embassy)."""
    return encode_frame(
        MessageKind.STATUS,
        StatusMessage(
            device_type=DEVICE_TYPES[board_family],
            board_family=board_family,
            firmware_stack="rust_embassy",
            firmware_version="0.1.0",
            device_id=device_id,
        ),
    )


def reading_frame(device_id: str, value: float) -> bytes:
    """A temperature reading frame."""
    return encode_frame(
        MessageKind.TELEMETRY,
        TelemetryMessage(device_id=device_id, metric="temperature_c", value=value, unit="C"),
    )
