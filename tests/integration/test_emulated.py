"""The emulated firmware tier end to end: the reference C firmware under QEMU
(netduinoplus2), its USART1 bridged to a real site by the unchanged bridge, the bench
playing the PN532 on USART2.

Skipped, saying why, where QEMU or the ARM toolchain is missing (`make setup-emulated`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bench.cmd_hardware import make_bridge
from bench.site import RunningBench
from hardware.emulated import EmulatedDoor
from hardware.emulator import DEFAULT_FIRMWARE, FIRMWARE_DIR, EmulatorSpec, ensure_firmware

pytestmark = pytest.mark.integration

MISSING = [t for t in ("qemu-system-arm", "arm-none-eabi-gcc") if shutil.which(t) is None]
if MISSING:
    pytest.skip(
        f"emulated tier: {', '.join(MISSING)} not installed (make setup-emulated)",
        allow_module_level=True,
    )

VARIANT = FIRMWARE_DIR / "build" / "door-variant.elf"
GRANTED = "04A1B2C3"
DEADLINE_S = 20.0


def measured_hash(elf: Path) -> str:
    """What the firmware's measured boot must report: SHA-256 of its flash image."""
    binary = elf.with_suffix(".bin")
    subprocess.run(["arm-none-eabi-objcopy", "-O", "binary", str(elf), str(binary)], check=True)
    return hashlib.sha256(binary.read_bytes()).hexdigest()


async def until(check: Callable[[], Any], what: str, timeout_s: float = DEADLINE_S) -> Any:
    last: Any = None
    async with asyncio.timeout(timeout_s):
        while True:
            last = check()
            if asyncio.iscoroutine(last):
                last = await last
            if last:
                return last
            await asyncio.sleep(0.05)


class Door:
    """An emulated door bridged to site a, and what its console printed."""

    def __init__(self, bench: RunningBench, firmware: Path, device_id: str) -> None:
        self.device_id = device_id
        self.lines: list[str] = []
        self.emulated = EmulatedDoor(
            EmulatorSpec(firmware, device_id), bench.state_dir / f"qemu-{device_id}.log"
        )
        self.bench = bench
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Door:
        await self.emulated.start()
        bridge = make_bridge(
            self.bench.info, "a", self.emulated.console_port, console=self.lines.append
        )
        self._task = asyncio.create_task(bridge.run(), name=f"bridge {self.device_id}")
        await bridge.wait_until(lambda stats: stats.port_opens >= 1)
        await self.emulated.boot()
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await self._task
        await self.emulated.aclose()

    def saw(self, text: str, start: int = 0) -> bool:
        return any(text in line for line in self.lines[start:])


@pytest.fixture(scope="module")
def firmware() -> Path:
    ensure_firmware(DEFAULT_FIRMWARE)
    subprocess.run(["make", "-C", str(FIRMWARE_DIR), "variant"], check=True, capture_output=True)
    return DEFAULT_FIRMWARE


@pytest.fixture
async def door(bench_one: RunningBench, firmware: Path) -> AsyncIterator[Door]:
    async with Door(bench_one, firmware, f"emu-door-{uuid.uuid4().hex[:6]}") as running:
        yield running


async def device(bench: RunningBench, device_id: str) -> dict[str, Any] | None:
    async with bench.site("a").api_client(timeout=5) as api:
        response = await api.get(f"/api/v1/cps/devices/{device_id}")
    return response.json() if response.status_code == 200 else None


async def grant(bench: RunningBench, uid: str, device_id: str) -> None:
    async with bench.site("a").api_client(timeout=5) as api:
        response = await api.post(
            "/api/v1/cps/access/grants", json={"uid": uid, "device_ids": [device_id]}
        )
    assert response.status_code in (200, 201), response.text


async def test_the_door_registers_trusted_at_its_measured_hash(
    bench_one: RunningBench, door: Door, firmware: Path
) -> None:
    expected = measured_hash(firmware)

    async def trusted() -> dict[str, Any] | None:
        found = await device(bench_one, door.device_id)
        return found if found and found["trust_status"] == "trusted" else None

    registered = await until(trusted, "the emulated door registered and trusted")
    assert registered["firmware_hash"] == expected
    assert registered["board_family"] == "stm32f405"
    assert door.saw(f"measured boot: sha256 {expected}")


async def test_a_granted_swipe_through_the_pn532_unlocks_and_relocks(
    bench_one: RunningBench, door: Door
) -> None:
    await until(lambda: device(bench_one, door.device_id), "registration")
    await grant(bench_one, GRANTED, door.device_id)
    mark = len(door.lines)
    door.emulated.swipe(GRANTED)
    await until(lambda: door.saw("lock: unlocked for", mark), "the unlock line")
    await until(lambda: door.saw("lock: locked (duration over)", mark), "the relock line")
    assert door.emulated.reader.waiting == 0
    assert door.emulated.reader.bad_frames == 0


async def test_lockdown_ignores_a_granted_badge(bench_one: RunningBench, door: Door) -> None:
    await until(lambda: device(bench_one, door.device_id), "registration")
    await grant(bench_one, GRANTED, door.device_id)
    async with bench_one.site("a").api_client(timeout=5) as api:
        response = await api.post(
            f"/api/v1/cps/devices/{door.device_id}/commands", json={"verb": "lockdown"}
        )
    assert response.status_code == 202, response.text
    await until(lambda: door.saw("lock: lockdown (lockdown)"), "the lockdown line")
    mark = len(door.lines)
    door.emulated.swipe(GRANTED)
    await until(lambda: door.saw("lock: lockdown (unlock ignored)", mark), "unlock refused")
    assert not door.saw("lock: unlocked", mark)


async def test_another_build_reports_another_hash_and_drifts(
    bench_one: RunningBench, firmware: Path
) -> None:
    device_id = f"emu-drift-{uuid.uuid4().hex[:6]}"
    async with Door(bench_one, firmware, device_id):
        await until(lambda: device(bench_one, device_id), "first registration")
    async with Door(bench_one, VARIANT, device_id) as second:

        async def drifted() -> bool:
            found = await device(bench_one, device_id)
            return bool(found and found["trust_status"] == "drift_detected")

        await until(drifted, "drift_detected after the variant image booted")
        assert second.saw(f"measured boot: sha256 {measured_hash(VARIANT)}")
    assert measured_hash(VARIANT) != measured_hash(firmware)


def test_conformance_on_the_emulated_board_passes(tmp_path: Path) -> None:
    """`aurora-bench emulate --conformance`: the reference firmware keeps the contract."""
    report = tmp_path / "conformance.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "emulate", "--id", "emu-conf-1",
         "--conformance", "14", "--json", str(report)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout
    verdict = json.loads(report.read_text())
    assert verdict["frames"]["status"] >= 2
    assert verdict["violations"] == []
