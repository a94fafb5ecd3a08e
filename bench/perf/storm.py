"""``make bench``: a reconnect storm — every device connected, the site's Mosquitto restarted.

Figures: seconds from the broker serving again until every device is back (goal <= 20 s)
and until every device's transmit queue is empty, QoS 1 messages lost of those queued during
the restart (goal 0; what "queued" means is in :mod:`bench.reconnect_storm`), how many
reconnects resumed their TLS session. Devices back off with jitter (``STORM_BACKOFF``),
as firmware should.

Certificates and TLS contexts are made before the clock; the fleet powering up first is a
ramp of :data:`FIRST_IN_FLIGHT` connects at a time, not part of the storm.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from backend.retry import Backoff
from bench.errors import BenchError
from bench.fleet import raise_nofile_limit
from bench.perf.devices import QUICK_DEVICES, broker_pid_of, issue_devices
from bench.perf.figures import Figure
from bench.perf.procstat import cpu_seconds
from bench.perf.runner import DEFAULT_DEVICES
from bench.reconnect_storm import backend_session, restart_broker, storm, storm_devices
from simulators.tls_sessions import TlsSessions

GOAL_BACK_S = 20.0
#: A device's retry delays: 0.5 s, 1 s, 2 s ... 8 s, each +-50 %, so devices that lost the
#: broker in the same instant spread their attempts instead of arriving together.
STORM_BACKOFF = Backoff(initial_s=0.5, max_s=8.0, jitter=0.5)
FIRST_IN_FLIGHT = 64
#: Seconds any one phase (powering up, coming back, emptying queues) may take.
PHASE_TIMEOUT_S = 300.0


async def measure(ctx: Any, devices: int | None = None) -> list[Figure]:
    """Storm with ``devices`` (default: the run's ``--devices``; 100 in quick runs)."""
    config = getattr(ctx, "config", None)
    quick = bool(getattr(config, "quick", False))
    count = (
        devices or getattr(config, "devices", None) or (QUICK_DEVICES if quick else DEFAULT_DEVICES)
    )
    bench = getattr(ctx, "bench", None)
    if bench is None:
        raise BenchError("the storm restarts the site's Mosquitto: it needs a bench it started")
    site = getattr(ctx, "site_id", "a")
    progress = getattr(ctx, "progress", lambda _text: None)
    limit = raise_nofile_limit(count + 1024)
    ids = [f"storm-dev-{n:05d}" for n in range(count)]
    progress(f"storm: {count} device certificates and TLS contexts")
    await asyncio.to_thread(issue_devices, ctx, ids, progress)
    sessions = TlsSessions()
    fleet = await asyncio.to_thread(
        storm_devices, bench, site, ids, sessions, STORM_BACKOFF, timeout_s=30.0
    )
    backend = backend_session(bench, site, f"storm-backend-{os.getpid()}")

    def counts() -> tuple[int, int, int]:
        c = sessions.counts
        return c.resumed, c.full, c.offered_not_resumed

    result = await storm(
        fleet,
        backend,
        lambda: restart_broker(bench, site, fleet),
        counts=counts,
        timeout_s=PHASE_TIMEOUT_S,
        first_in_flight=FIRST_IN_FLIGHT,
        progress=progress,
    )
    load = os.getloadavg()[0]
    broker_cpu = cpu_seconds(broker_pid_of(ctx))  # the restarted broker's, since its start
    reconnects = result.resumed + result.full
    note = (
        f"goal <= {GOAL_BACK_S:.0f} s; {count} devices (fd limit {limit}), broker down "
        f"{result.down_s:.1f} s (stop, persistence saved, start); backoff "
        f"{STORM_BACKOFF.initial_s:g}-{STORM_BACKOFF.max_s:g} s +-{STORM_BACKOFF.jitter:.0%}; "
        f"{result.failures} failed attempts on the way; load average {load:.1f}"
    )
    lost_note = (
        f"goal 0; {result.expected} expected: one per device queued at the broker for the "
        f"backend's persistent session before the restart (session restored: "
        f"{'yes' if result.session_present else 'NO'}) and one per device queued on the "
        f"device while the broker was down; {result.duplicates} duplicates"
    )
    if broker_cpu is not None:
        note += (
            f"; broker CPU {1000 * broker_cpu / count:.2f} ms per device since its start "
            "(restoring its persistence, every reconnect and publish)"
        )
    if result.missing:
        lost_note += f"; first missing: {result.missing[:3]}"
    return [
        Figure("storm.back_s", round(result.back_s, 2), "s", note=note),
        Figure(
            "storm.queues_empty_s",
            round(result.flushed_s, 2),
            "s",
            note="from the broker serving again until every device's queue was PUBACKed",
        ),
        Figure("storm.lost", result.lost, "messages", note=lost_note),
        Figure(
            "storm.client_cpu_per_reconnect",
            round(1000 * result.client_cpu_s / count, 2),
            "ms",
            note="this process (every device) from the broker up until every queue was empty",
        ),
        Figure(
            "storm.resumed_share",
            round(100 * result.resumed / reconnects, 1) if reconnects else 0.0,
            "%",
            note=(
                f"{result.resumed} resumed, {result.full} full handshakes on the way back; "
                f"{result.offered_not_resumed} offered a ticket the restarted broker could "
                "not read (the bench's Mosquitto keeps its ticket key while its CRL is "
                "unchanged, bench/services/ticket_keys.py; stock Mosquitto makes a new one "
                "at every start)"
            ),
        ),
    ]
