"""The real-board path end to end, without hardware: a virtual door on a PTY (the
``aurora-bench virtual-board`` CLI in its own process, scripted through stdin), the pyserial
bridge, and a real site (Mosquitto with mTLS, the backend and its REST API)."""

from __future__ import annotations

import asyncio
import functools
import json
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bench.cmd_hardware import make_bridge
from bench.eventually import eventually as _eventually
from bench.fixtures import BenchFactory, probe_client
from bench.site import RunningBench
from hardware.bridge import Bridge

DEADLINE_S = 20.0
#: The shared poll helper with this module's deadline.
eventually = functools.partial(_eventually, timeout_s=DEADLINE_S)


class BoardProcess:
    """``aurora-bench virtual-board`` as a child process: stdin commands, stdout lines."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read(), name="virtual board stdout")

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode().rstrip("\n"))
            self._changed.set()

    async def line(self, predicate: Callable[[str], bool], what: str, start: int = 0) -> str:
        """The first line from index ``start`` on that satisfies ``predicate``."""
        async with asyncio.timeout(DEADLINE_S):
            while True:
                for text in self.lines[start:]:
                    if predicate(text):
                        return text
                self._changed.clear()
                if self._reader.done():
                    raise AssertionError(f"virtual board ended before {what}: {self.lines}")
                await self._changed.wait()

    async def do(self, command: str) -> str:
        """Send one scripted command; returns its ``ok``/``error`` reply."""
        assert self.process.stdin is not None
        mark = len(self.lines)
        self.process.stdin.write(command.encode() + b"\n")
        await self.process.stdin.drain()
        verb = command.split(maxsplit=1)[0]
        reply = await self.line(
            lambda t: t.startswith((f"ok {verb}", "error:")), f"reply to {command!r}", mark
        )
        assert reply.startswith("ok"), reply
        return reply

    def count(self, text: str) -> int:
        return sum(1 for line in self.lines if line == text)

    async def close(self) -> None:
        if self.process.returncode is None:
            if self.process.stdin is not None:
                self.process.stdin.close()
            self.process.terminate()
            await self.process.wait()
        await self._reader


@pytest.fixture
async def virtual_door(bench_one: RunningBench) -> AsyncIterator[tuple[BoardProcess, str, Path]]:
    device_id = f"vdoor-{uuid.uuid4().hex[:8]}"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench",
        "virtual-board",
        "--board",
        "stm32f401-door",
        "--id",
        device_id,
        "--state-dir",
        str(bench_one.state_dir),
        "--heartbeat-s",
        "1",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    board = BoardProcess(process)
    try:
        link = await board.line(lambda t: t.startswith("link "), "the PTY link")
        yield board, device_id, Path(link.removeprefix("link "))
    finally:
        await board.close()


@pytest.fixture
async def running_bridge(
    bench_one: RunningBench, virtual_door: tuple[BoardProcess, str, Path]
) -> AsyncIterator[tuple[Bridge, list[str]]]:
    console: list[str] = []
    bridge = make_bridge(bench_one.info, "a", str(virtual_door[2]), console=console.append)
    task = asyncio.create_task(bridge.run(), name="bridge under test")
    try:
        yield bridge, console
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_virtual_door_through_the_bridge(
    bench_one: RunningBench,
    virtual_door: tuple[BoardProcess, str, Path],
    running_bridge: tuple[Bridge, list[str]],
) -> None:
    board, device_id, _ = virtual_door
    bridge, console = running_bridge

    async with bench_one.site("a").api_client(timeout=10) as http:
        # 1. The board's status frame, through pyserial and the bridge's own mTLS identity,
        #    registers it with the backend.
        async def registered() -> dict[str, object] | None:
            response = await http.get("/api/v1/cps/devices")
            response.raise_for_status()
            body = response.json()
            items = body["items"] if isinstance(body, dict) else body
            return next((d for d in items if d["device_id"] == device_id), None)

        device = await eventually(registered, f"{device_id} in GET /api/v1/cps/devices")
        assert device["board_family"] == "stm32f401"
        assert bridge.session.device_id == device_id

        # 2. A granted swipe: the backend's unlock goes down the serial line, the lock opens.
        grant = await http.post(
            "/api/v1/cps/access/grants", json={"uid": "0455AF21", "device_ids": [device_id]}
        )
        assert grant.status_code in (200, 201), grant.text
        await board.do("swipe 0455AF21")
        await board.line(lambda t: t == "command unlock", "the unlock command on the PTY")
        await board.line(lambda t: t == "lock unlocked", "the lock to open")
        assert bridge.stats.commands_down >= 1

        # 2b. An attestation challenge goes down as a frame, the board signs it with its PKI
        #     key, and the response frame comes back up and verifies.
        challenge = await http.post(f"/api/v1/cps/devices/{device_id}/attestations")
        assert challenge.status_code == 202, challenge.text

        async def verified() -> bool:
            response = await http.get(f"/api/v1/cps/devices/{device_id}")
            return bool(response.json()["attestation_status"] == "verified")

        await eventually(verified, "attestation_status verified")
        assert bridge.stats.frames["attestation_response"] == 1

    # 3. A malformed frame is reported in one line and never published: a valid swipe sent
    #    after it arrives at a probe subscriber, and nothing arrived before it.
    async with probe_client(bench_one) as probe:
        await probe.subscribe(f"aurora/access/{device_id}/badge_event", qos=1)
        bad = f'@aurora badge_event {{"device_id":"{device_id}","uid":"zz","event":"badge_read"}}'
        await board.do(f"raw {bad}")
        await bridge.wait_until(lambda stats: stats.violations >= 1)
        (violation,) = bridge.violations
        assert (violation.reason, violation.field) == ("bad_value", "uid")
        assert any(
            "contract violation: bad_value in badge_event frame field 'uid'" in line
            for line in console
        )
        await board.do("swipe 0455AF22")
        async with asyncio.timeout(DEADLINE_S):
            first = await anext(aiter(probe.messages))
        assert isinstance(first.payload, bytes)
        assert json.loads(first.payload)["uid"] == "0455AF22"

    # 3b. A valid frame for another device id is refused: the board speaks for itself only.
    await board.do("fault impersonate target=someone-else kind=badge_event")
    await bridge.wait_until(lambda stats: stats.refused >= 1)
    assert any("refused badge_event frame" in line and "'someone-else'" in line for line in console)

    # 4. Unplug: the bridge notices and waits; replug: it reopens, and commands flow again.
    await board.do("unplug")
    await eventually(
        lambda: any("board disconnected" in line for line in console), "the unplug noticed"
    )
    await board.do("replug")
    await bridge.wait_until(lambda stats: stats.port_opens >= 2)
    unlocks = board.count("command unlock")
    await board.do("swipe 0455AF21")
    await eventually(lambda: board.count("command unlock") > unlocks, "an unlock after replug")

    # The board's log lines are kept under <state>/boards/<device id>.log.
    log = Path(bench_one.state_dir) / "boards" / f"{device_id}.log"
    text = log.read_text()
    assert "rx: command unlock" in text
    assert "contract violation" in text


async def test_bridge_survives_the_broker_going_away(
    bench_factory: BenchFactory, tmp_path: Path
) -> None:
    bench = bench_factory(["a"], backend=False)
    device_id = f"vdoor-{uuid.uuid4().hex[:8]}"
    from bench.virtual_board import VirtualBoard

    board_lines: list[str] = []
    board = VirtualBoard(
        "stm32f401-door", device_id, tmp_path / "door.tty", heartbeat_s=0.2, say=board_lines.append
    )
    board_task = asyncio.create_task(board.run(), name="virtual door")
    console: list[str] = []
    try:
        await eventually((tmp_path / "door.tty").exists, "the PTY link")
        bridge = make_bridge(
            bench.info, "a", str(tmp_path / "door.tty"), console=console.append, buffer_frames=3
        )
        bridge_task = asyncio.create_task(bridge.run(), name="bridge under test")
        try:
            async with asyncio.timeout(DEADLINE_S):
                await bridge.wait_until(lambda s: s.broker_connects >= 1 and s.published >= 1)
            await asyncio.to_thread(bench.stop_service, "a", "mosquitto")
            async with asyncio.timeout(DEADLINE_S):
                await bridge.wait_until(lambda s: s.dropped >= 2)
            assert any("broker unreachable" in line for line in console)
            assert any("dropped the oldest" in line for line in console)
            assert bridge.buffered <= 3
            published = bridge.stats.published
            await asyncio.to_thread(bench.start_service, "a", "mosquitto")
            async with asyncio.timeout(DEADLINE_S):
                await bridge.wait_until(
                    lambda s: s.broker_connects >= 2 and s.published >= published + 3
                )
            assert any(
                "frames were dropped while the broker was unreachable" in line for line in console
            )
        finally:
            bridge_task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await bridge_task
    finally:
        board.stopped.set()
        await board_task


async def test_swipe_to_unlock_latency_through_the_bridge(
    bench_one: RunningBench,
    virtual_door: tuple[BoardProcess, str, Path],
    running_bridge: tuple[Bridge, list[str]],
    record_property: Callable[[str, object], None],
) -> None:
    """Badge read on the PTY -> bridge -> broker -> backend -> unlock back down the PTY."""
    board, device_id, _ = virtual_door
    bridge, _ = running_bridge
    async with asyncio.timeout(DEADLINE_S):
        await bridge.wait_until(lambda s: s.broker_connects >= 1 and s.published >= 1)
    async with bench_one.site("a").api_client(timeout=10) as http:
        grant = await http.post(
            "/api/v1/cps/access/grants", json={"uid": "0455AF30", "device_ids": [device_id]}
        )
        assert grant.status_code in (200, 201), grant.text
    latencies_ms = []
    for _ in range(20):
        mark = len(board.lines)
        started = time.perf_counter()
        await board.do("swipe 0455AF30")
        await board.line(lambda t: t == "command unlock", "the unlock", mark)
        latencies_ms.append((time.perf_counter() - started) * 1000)
    latencies_ms.sort()
    p50, p95 = latencies_ms[len(latencies_ms) // 2], latencies_ms[int(len(latencies_ms) * 0.95) - 1]
    record_property("swipe_unlock_p50_ms", round(p50, 1))
    record_property("swipe_unlock_p95_ms", round(p95, 1))
    print(f"swipe -> unlock through the bridge: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    assert p95 < 1000, latencies_ms


async def test_bridge_cli_joins_the_site_from_bench_json_and_stops_on_sigterm(
    bench_one: RunningBench, virtual_door: tuple[BoardProcess, str, Path]
) -> None:
    """`aurora-bench bridge --port <link> --state-dir <bench>` as a user runs it."""
    _, device_id, link = virtual_door
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench",
        "bridge",
        "--port",
        str(link),
        "--state-dir",
        str(bench_one.state_dir),
        stdout=asyncio.subprocess.PIPE,
    )
    bridge = BoardProcess(process)  # the same line reader serves any child process
    try:
        await bridge.line(lambda t: f"this board is {device_id}" in t, "the pin")
        await bridge.line(lambda t: "connected to the broker" in t, "the broker connection")
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(DEADLINE_S):
            await process.wait()
        await bridge.close()
    assert process.returncode == 0
    assert any(line.startswith("stopped: ") and "published" in line for line in bridge.lines)
