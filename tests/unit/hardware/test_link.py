"""pyserial in a thread over a real PTY: bytes both ways, unplug, prompt cancellation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hardware.errors import PortError
from hardware.link import READ_TIMEOUT_S, SerialLink
from hardware.profiles import GENERIC
from hardware.pty_port import PtyPort


@pytest.fixture
async def pty(tmp_path: Path) -> AsyncIterator[PtyPort]:
    port = PtyPort(tmp_path / "board.tty")
    port.plug()
    try:
        yield port
    finally:
        port.unplug()


async def read_until(link: SerialLink, wanted: bytes) -> bytes:
    data = b""
    async with asyncio.timeout(5):
        while wanted not in data:
            data += await link.read()
    return data


async def test_bytes_flow_both_ways_through_the_stable_link(pty: PtyPort) -> None:
    assert pty.link_path is not None
    assert pty.link_path.resolve() == Path(str(pty.slave_path)).resolve()
    link = await SerialLink.open(str(pty.link_path), GENERIC)
    try:
        pty.write(b"@aurora hello\n")
        assert await read_until(link, b"\n") == b"@aurora hello\n"
        await link.write(b"down\n")
        async with asyncio.timeout(5):
            assert await pty.read() == b"down\n"
    finally:
        await link.aclose()
        await link.aclose()  # safe twice


async def test_unplug_is_a_port_error_and_replug_reopens(pty: PtyPort) -> None:
    link = await SerialLink.open(str(pty.link_path), GENERIC)
    pty.unplug()
    with pytest.raises(PortError, match=r"board\.tty"):
        async with asyncio.timeout(5):
            while True:
                await link.read()
    await link.aclose()
    with pytest.raises(PortError):
        await SerialLink.open(str(pty.link_path), GENERIC)
    pty.plug()
    again = await SerialLink.open(str(pty.link_path), GENERIC)
    try:
        pty.write(b"back\n")
        assert await read_until(again, b"\n") == b"back\n"
    finally:
        await again.aclose()


async def test_an_idle_read_never_blocks_the_loop_and_cancels_promptly(pty: PtyPort) -> None:
    link = await SerialLink.open(str(pty.link_path), GENERIC)
    try:

        async def read_forever() -> None:
            while True:
                assert await link.read() == b""

        reader = asyncio.create_task(read_forever())
        ticks = 0
        started = time.monotonic()
        while time.monotonic() - started < 0.2:
            await asyncio.sleep(0.005)
            ticks += 1
        assert ticks > 10  # the loop kept running while the thread waited on the port
        reader.cancel()
        started = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await reader
        await link.aclose()
        assert time.monotonic() - started < READ_TIMEOUT_S + 0.5
    finally:
        await link.aclose()


async def test_output_nobody_reads_is_dropped_not_blocking(pty: PtyPort) -> None:
    written = sum(pty.write(b"x" * 1024) for _ in range(512))
    assert written < 512 * 1024
    assert pty.dropped_bytes == 512 * 1024 - written


async def test_a_second_opener_is_refused_clearly(pty: PtyPort) -> None:
    link = await SerialLink.open(str(pty.link_path), GENERIC)
    try:
        with pytest.raises(PortError, match="busy: another bridge"):
            await SerialLink.open(str(pty.link_path), GENERIC)
    finally:
        await link.aclose()
