"""The emulated firmware tier's figures: boot to first ``status``, swipe -> unlock round
trip through QEMU and a real site, and how many emulated boards one machine holds.

Skipped (a note, not a failure) where QEMU or the ARM toolchain is missing.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import time
import uuid
from pathlib import Path

from bench.cmd_hardware import make_bridge
from bench.perf.figures import Figure
from bench.perf.procstat import cpu_seconds
from bench.perf.runner import PerfContext
from hardware.emulated import EmulatedDoor
from hardware.emulator import DEFAULT_FIRMWARE, EmulatorSpec, ensure_firmware
from hardware.link import SerialLink
from hardware.profiles import GENERIC

BOOTS = 3
SWIPES = 15
IDLE_BOARDS = 3
IDLE_WINDOW_S = 5.0


def _cpu(pid: int) -> float:
    seconds = cpu_seconds(pid)
    if seconds is None:
        raise OSError(f"cannot read the CPU time of process {pid}")
    return seconds


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def _boot_to_status_s(firmware: Path) -> float:
    async with EmulatedDoor(EmulatorSpec(firmware, f"perf-boot-{uuid.uuid4().hex[:6]}")) as door:
        link = await SerialLink.open(door.console_port, GENERIC)
        try:
            started = time.perf_counter()
            await door.boot()
            seen = b""
            async with asyncio.timeout(30):
                while b"@aurora status " not in seen:
                    seen += await link.read()
            return time.perf_counter() - started
        finally:
            await link.aclose()


class _Console:
    """The bridge's console lines, with a wait for one containing a text."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._changed = asyncio.Event()

    def append(self, line: str) -> None:
        self.lines.append(line)
        self._changed.set()

    async def wait_for(self, text: str, start: int, timeout_s: float = 20.0) -> None:
        async with asyncio.timeout(timeout_s):
            while True:
                self._changed.clear()
                if any(text in line for line in self.lines[start:]):
                    return
                await self._changed.wait()


async def _swipe_round_trips_s(ctx: PerfContext, firmware: Path) -> list[float]:
    device_id = f"perf-emu-{uuid.uuid4().hex[:6]}"
    console = _Console()
    site = ctx.info.site(ctx.site_id)
    uids = [f"0A{n:06X}" for n in range(1, SWIPES + 1)]
    async with EmulatedDoor(EmulatorSpec(firmware, device_id)) as door:
        bridge = make_bridge(ctx.info, ctx.site_id, door.console_port, console=console.append)
        task = asyncio.create_task(bridge.run(), name="perf emulated bridge")
        try:
            await bridge.wait_until(lambda stats: stats.port_opens >= 1)
            await door.boot()
            async with site.api_client(timeout=10) as api:
                for _ in range(600):  # registration: at most a minute
                    if (await api.get(f"/api/v1/cps/devices/{device_id}")).status_code == 200:
                        break
                    await asyncio.sleep(0.1)
                for uid in uids:
                    response = await api.post(
                        "/api/v1/cps/access/grants", json={"uid": uid, "device_ids": [device_id]}
                    )
                    response.raise_for_status()
                spent = []
                for uid in uids:
                    mark = len(console.lines)
                    started = time.perf_counter()
                    door.swipe(uid)
                    await console.wait_for("lock: unlocked", mark)
                    spent.append(time.perf_counter() - started)
                    await api.post(
                        f"/api/v1/cps/devices/{device_id}/commands", json={"verb": "lock"}
                    )
                    await console.wait_for("lock: locked (lock)", mark)
                return spent
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _idle_costs(firmware: Path) -> tuple[float, int]:
    """(CPU cores, RSS bytes) one idle emulated board costs, averaged over IDLE_BOARDS."""
    doors = [EmulatedDoor(EmulatorSpec(firmware, f"perf-idle-{i}")) for i in range(IDLE_BOARDS)]
    links = []
    try:
        for door in doors:
            await door.start()
            links.append(await SerialLink.open(door.console_port, GENERIC))
            await door.boot()
        await asyncio.sleep(1.0)  # past the boot
        pids = [door.emulator.pid for door in doors if door.emulator.pid is not None]
        before = [_cpu(pid) for pid in pids]
        started = time.monotonic()
        deadline = started + IDLE_WINDOW_S
        while time.monotonic() < deadline:  # keep reading so no UART blocks on a full PTY
            await asyncio.gather(*(link.read() for link in links))
        elapsed = time.monotonic() - started
        cores = [(_cpu(pid) - b) / elapsed for pid, b in zip(pids, before, strict=True)]
        rss = [_rss_bytes(pid) for pid in pids]
        return statistics.mean(cores), int(statistics.mean(rss))
    finally:
        for link in links:
            await link.aclose()
        for door in doors:
            await door.aclose()


async def measure(ctx: PerfContext) -> list[Figure]:
    """Boot time (median of BOOTS), swipe round trip p50/p99, boards per machine."""
    if shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None:
        ctx.progress("emulated: QEMU or the ARM toolchain is missing (make setup-emulated)")
        return []
    firmware = ensure_firmware(DEFAULT_FIRMWARE)
    ctx.progress(f"emulated: {BOOTS} boots")
    boots = sorted([await _boot_to_status_s(firmware) for _ in range(BOOTS)])
    ctx.progress(f"emulated: {SWIPES} swipes through QEMU, the bridge and site a")
    trips = sorted(await _swipe_round_trips_s(ctx, firmware))
    ctx.progress(f"emulated: {IDLE_BOARDS} idle boards for {IDLE_WINDOW_S:g} s")
    cores, rss = await _idle_costs(firmware)
    total_mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    ncpu = os.cpu_count() or 1
    by_cpu = ncpu / cores if cores > 0 else float("inf")
    by_mem = total_mem / rss if rss else float("inf")
    return [
        Figure("emulated.boot_to_status", statistics.median(boots), "s",
               note=f"{BOOTS} boots {boots[0]:.2f}-{boots[-1]:.2f} s; QEMU netduinoplus2"),
        Figure("emulated.swipe_unlock_p50", trips[len(trips) // 2] * 1000, "ms",
               note="PN532 model -> firmware -> bridge -> site -> unlock -> lock line"),
        Figure("emulated.swipe_unlock_p99", trips[int(0.99 * (len(trips) - 1))] * 1000, "ms",
               note=f"{SWIPES} swipes"),
        Figure("emulated.boards_per_machine", min(by_cpu, by_mem), "boards",
               note=f"idle board: {cores * 100:.1f} % of a core, {rss / 2**20:.0f} MiB RSS; "
               f"{ncpu} cores, {total_mem / 2**30:.0f} GiB"),
    ]  # fmt: skip
