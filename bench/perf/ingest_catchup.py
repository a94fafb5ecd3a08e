"""Catch-up after an outage (issue 17): the backend is stopped for ``catchup_down_s`` (60 s)
while one device keeps publishing ``catchup_rate`` (2,000) QoS 1 readings a second, then
started again.

* ``ingest.catchup`` — seconds from the restart command (the backend's own start-up
  included) until the last reading sent before it is in the telemetry stream: the backlog
  is processed (goal <= 10 s). The broker delivers the session's queue in order, so the
  readings sent after the restart queue behind it.
* ``ingest.catchup.lost`` / ``.duplicated`` — readings acknowledged by the broker that never
  reached the stream, and stream entries beyond the first per trace (goal 0 each), counted
  by trace id over the whole run.

The generator is :mod:`bench.perf.ingest_load` in its own process; the broker stays up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from backend.bus import TELEMETRY_STREAM
from bench.load.clients import MeasurementError
from bench.perf.figures import Figure
from bench.perf.ingest_load import LoadProcess
from bench.perf.ingest_watch import StreamWatcher
from bench.perf.runner import PerfContext

DEVICE = "perf-catchup-0001"
#: Seconds of live load before the backend is stopped, and after it is back.
LIVE_BEFORE_S = 5.0
LIVE_AFTER_S = 20.0
GOAL_S = 10.0


def catch_up(ctx: PerfContext, rate: float, down_s: float) -> tuple[float, float, int, int, int]:
    """(seconds to catch up, of which start-up, readings sent, lost, duplicated) of one
    outage; start-up is the restart command to the first entry after it."""
    site = ctx.info.site(ctx.site_id)
    seconds = LIVE_BEFORE_S + down_s + LIVE_AFTER_S
    with StreamWatcher(site.redis, TELEMETRY_STREAM, DEVICE) as watcher:
        load = LoadProcess(ctx, DEVICE, rate, seconds, warmup_s=1.0)
        try:
            time.sleep(1.0 + LIVE_BEFORE_S)
            ctx.bench.stop_backend(ctx.site_id)
            time.sleep(down_s)
            restart_ns = time.time_ns()
            ctx.bench.start_backend(ctx.site_id)
            result = load.result(timeout_s=seconds + 120)
        finally:
            load.kill()
        if result.acked != result.sent:
            raise MeasurementError(
                f"the broker acknowledged {result.acked} of {result.sent} readings"
            )
        with contextlib.suppress(MeasurementError):  # what is missing is counted as lost
            watcher.wait_for(range(result.sent), 60.0)
        backlog = [a for a in watcher.arrivals.values() if a.sent_ns < restart_ns]
        if not backlog:
            raise MeasurementError("no reading sent before the restart reached the stream")
        done_ms = max(arrival.entry_ms for arrival in backlog)
        first_ms = min(stamp for stamp in watcher.entry_ms if stamp * 1e6 >= restart_ns)
        lost = result.sent - len(watcher.arrivals)
        return (
            (done_ms * 1e6 - restart_ns) / 1e9,
            (first_ms * 1e6 - restart_ns) / 1e9,
            result.sent,
            lost,
            watcher.duplicates,
        )


async def measure(ctx: PerfContext) -> list[Figure]:
    """The catch-up figures (see the module docstring)."""
    config = ctx.config
    rate, down_s = config.catchup_rate, config.catchup_down_s
    ctx.progress(f"catch-up: backend down {down_s:g} s under {rate:g} msg/s")
    seconds, startup_s, sent, lost, duplicated = await asyncio.to_thread(
        catch_up, ctx, rate, down_s
    )
    ctx.progress(
        f"catch-up: {seconds:.1f} s after the restart (start-up {startup_s:.1f} s); {sent:,} "
        f"sent, {lost} lost, {duplicated} duplicated"
    )
    what = f"backend down {down_s:g} s under {rate:,.0f} msg/s ({sent:,} readings)"
    return [
        Figure(
            "ingest.catchup",
            round(seconds, 2),
            "s",
            note=f"{what}; restart command -> backlog in the stream, of which start-up "
            f"(restart -> first entry) {startup_s:.1f} s; goal <= {GOAL_S:g} s",
        ),
        Figure("ingest.catchup.lost", lost, "readings", note=f"{what}; goal <= 0"),
        Figure("ingest.catchup.duplicated", duplicated, "entries", note=f"{what}; goal <= 0"),
    ]
