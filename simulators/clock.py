"""The clock bridge: steps a simpy environment from asyncio (DESIGN.md, Time).

``env.peek()`` says when the next simulated event is due; the bridge sleeps the matching
wall time (``dt / speed``), then ``env.step()``. ``speed`` 1 is real time, >1 accelerated,
``math.inf`` as fast as possible (battery projections over months). It never blocks the
loop (no ``RealtimeEnvironment``): it yields to asyncio between batches of steps.

Sim time is anchored to the wall clock once (``t_sim = (t_wall - t0) * speed``) rather than
accumulated sleep by sleep, so a busy loop makes the bridge catch up instead of drifting.

Things arriving from asyncio (a downward MQTT message, a scenario's badge swipe) must not
touch the environment while it is "in the past": :meth:`ClockBridge.call_soon` wakes the
bridge, advances simulated time to *now* and only then runs the callback, so the event it
schedules happens at the right simulated instant.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable

import simpy

#: Steps run back to back before yielding to the event loop, in "as fast as possible" mode.
_BATCH = 500


class ClockBridge:
    """Drives ``env`` from asyncio at ``speed`` (1 real time, >1 faster, ``math.inf``)."""

    def __init__(self, env: simpy.Environment, speed: float = 1.0) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0 (or math.inf), got {speed}")
        self.env = env
        self.speed = speed
        self._pending: deque[Callable[[], None]] = deque()
        self._wake = asyncio.Event()
        self._t0_wall: float | None = None
        self._t0_sim = float(env.now)
        self._running = False
        self.steps = 0

    @property
    def realtime(self) -> bool:
        """True unless running as fast as possible."""
        return math.isfinite(self.speed)

    def sim_now(self) -> float:
        """The simulated time that corresponds to this wall instant (``env.now`` if unpaced)."""
        if not self.realtime or self._t0_wall is None:
            return float(self.env.now)
        wall = asyncio.get_running_loop().time()
        return self._t0_sim + (wall - self._t0_wall) * self.speed

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` inside the simulation at the current simulated instant.

        Safe from any coroutine on the bridge's loop. Outside :meth:`run` (pure simpy tests)
        nothing is sleeping, so the callback runs at once.
        """
        if not self._running:
            callback()
            return
        self._pending.append(callback)
        self._wake.set()

    def _advance_to(self, target: float) -> None:
        # env.run(until=...) processes everything due before `target`, then sets now=target.
        if target > self.env.now:
            self.env.run(until=target)

    def _run_pending(self) -> None:
        if not self._pending:
            return
        self._advance_to(self.sim_now())
        while self._pending:
            self._pending.popleft()()

    async def run(self, until_s: float | None = None) -> None:
        """Step the environment until simulated time ``until_s`` (forever when ``None``).

        Cancel the task to stop; the environment stays consistent (it is only touched
        between awaits).
        """
        loop = asyncio.get_running_loop()
        self._running = True
        self._t0_wall = loop.time()
        self._t0_sim = float(self.env.now)
        end = math.inf if until_s is None else until_s
        batch = 0
        try:
            while True:
                self._run_pending()
                due = self.env.peek()
                if not self.realtime:
                    if due > end or due == math.inf:
                        if end < math.inf and not self._pending:
                            self._advance_to(end)
                            return
                        self._wake.clear()
                        await self._wake.wait()
                        continue
                else:
                    now = self.sim_now()
                    if now >= end and due > end:
                        self._advance_to(end)
                        return
                    if due > now:
                        batch = 0
                        wait_s = (min(due, end) - now) / self.speed
                        self._wake.clear()
                        if self._pending:
                            continue
                        try:
                            async with asyncio.timeout(wait_s if math.isfinite(wait_s) else None):
                                await self._wake.wait()
                        except TimeoutError:
                            pass
                        continue
                # The next event is due: step, yielding to the loop after every batch.
                self.env.step()
                self.steps += 1
                batch += 1
                if batch >= _BATCH:
                    batch = 0
                    await asyncio.sleep(0)
        finally:
            self._running = False
            self._t0_wall = None
