"""The bridge with a board on a PTY and no broker to reach: pinning, the issuer, the bounded
buffer and its messages, and errors that end the run clearly (no servers needed)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hardware.bridge import Bridge, BrokerEndpoint, DeviceCredentials
from hardware.errors import HardwareError
from hardware.link import SerialLink
from hardware.profiles import GENERIC
from simulators.identity import self_signed_identity
from tests.unit.hardware.boards import running_board


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def credentials(tmp_path: Path, device_id: str) -> DeviceCredentials:
    identity = self_signed_identity(device_id)
    cert, key = tmp_path / f"{device_id}.crt", tmp_path / f"{device_id}.key"
    cert.write_text(identity.certificate_pem)
    key.write_text(identity.key_pem)
    return DeviceCredentials(cert, key)


@pytest.fixture
async def door(tmp_path: Path) -> AsyncIterator[Path]:
    async with running_board("stm32f401-door", "vdoor-off", tmp_path / "d.tty", heartbeat_s=0.1):
        yield tmp_path / "d.tty"


def make(tmp_path: Path, link: Path, issue: object, console: list[str], buffer: int) -> Bridge:
    creds = credentials(tmp_path, "ca")
    return Bridge(
        port_name=str(link),
        open_port=lambda: SerialLink.open(str(link), GENERIC),
        broker=BrokerEndpoint("127.0.0.1", closed_port(), creds.cert),
        issue_cert=issue,  # type: ignore[arg-type]
        log_dir=tmp_path / "boards",
        console=console.append,
        buffer_frames=buffer,
        retry_max_s=0.2,
    )


async def test_unreachable_broker_keeps_a_bounded_buffer_and_says_what_it_drops(
    tmp_path: Path, door: Path
) -> None:
    asked: list[str] = []

    def issue(device_id: str) -> DeviceCredentials:
        asked.append(device_id)
        return credentials(tmp_path, device_id)

    console: list[str] = []
    bridge = make(tmp_path, door, issue, console, buffer=4)
    task = asyncio.create_task(bridge.run())
    try:
        async with asyncio.timeout(10):
            await bridge.wait_until(lambda stats: stats.dropped >= 2)
        assert asked == ["vdoor-off"]
        assert bridge.buffered == 4
        assert bridge.stats.published == 0
        assert sum("broker unreachable (" in line for line in console) == 1  # said once
        assert any("dropped the oldest (status); 1 dropped" in line for line in console)
        assert (tmp_path / "boards" / "vdoor-off.log").exists()
        assert not (tmp_path / "boards" / "d.tty.log").exists()  # renamed at the pin
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_certificate_that_cannot_be_issued_ends_the_bridge(
    tmp_path: Path, door: Path
) -> None:
    def refuse(device_id: str) -> DeviceCredentials:
        raise HardwareError(f"no PKI for {device_id}")

    console: list[str] = []
    bridge = make(tmp_path, door, refuse, console, buffer=10)
    with pytest.raises(ExceptionGroup) as caught:
        async with asyncio.timeout(10):
            await bridge.run()
    assert caught.group_contains(HardwareError, match="no PKI for vdoor-off")
    assert any("cannot get a client certificate for vdoor-off" in line for line in console)
