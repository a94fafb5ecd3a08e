"""``make bench``: simulated devices per process, each with its own mTLS connection.

Every device is a :class:`~simulators.mqtt_link.MqttLink` — the link simulated fleets use —
with its own certificate from the bench PKI (CN = device_id), MQTT v5, TLS 1.3, its last
will and its two downward subscriptions. Figures: how many connect in one process (goal
10,000), the ramp rate (goal >= 500/s) overall and at its start and end, resident memory per
device, and CPU per handshake on each side, which together say what limits the count and
the rate (file descriptors, memory, or TLS handshake CPU on a machine this bench shares with
its broker).

Issuing the certificates and loading the TLS contexts happen before the clock starts; the
issuing time is its own figure (certificates are kept in the PKI, so only the first run on
a state directory pays it). The ramp has a time budget: connects not started by then are
not started, and what was reached is the figure. Every connection is closed again, also
when the measurement is abandoned, so nothing is left to load the next measurement (or to
fire 10,000 last wills into the next run).
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.contract import MessageKind, StatusMessage, encode
from bench.errors import BenchError
from bench.fleet import raise_nofile_limit
from bench.perf.figures import Figure
from bench.perf.procstat import cpu_seconds
from bench.perf.runner import DEFAULT_DEVICES, PerfConfig
from simulators.boards import EnvPresenceNode
from simulators.errors import LinkError
from simulators.firmware import build_image
from simulators.mqtt_link import MqttLink, device_tls_context
from simulators.tls_sessions import ResumptionCounts, TlsSessions

GOAL_DEVICES = 10_000
GOAL_RAMP_PER_S = 500.0
#: Devices of quick runs when the run's config does not say (else DEFAULT_DEVICES).
QUICK_DEVICES = 100
#: Connects in flight at once: a few dozen keep the event loop busy with TLS handshakes
#: while CONNACKs and SUBACKs are awaited; more only lengthens each connect and the tail
#: once the budget is spent.
IN_FLIGHT = 64
#: Seconds an abandoned ramp waits for the connects in flight before closing everything.
DRAIN_S = 15.0
#: Connections closed at once when done (each sends DISCONNECT and waits for the close).
CLOSE_BATCH = 500
#: Share of the connections over which the start and end ramp rates are taken; they are
#: reported only when that window holds several times :data:`IN_FLIGHT` connections (in a
#: smaller one, connects started together complete together and the rate means nothing).
RAMP_WINDOW = 0.1
MIN_WINDOW = 4 * IN_FLIGHT

Progress = Callable[[str], None]


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _status_payload(device_id: str) -> bytes:
    """The status an ESP32-S3 node would report (also its last will)."""
    board = EnvPresenceNode.board
    return encode(
        StatusMessage(
            device_type=board.device_type,
            board_family=board.board_family,
            firmware_stack=board.firmware_stack,
            firmware_version="0.1.0",
            device_id=device_id,
            firmware_hash=build_image(board.board_family, "0.1.0").sha256,
        )
    )


def window_rates(started: float, done_at: Sequence[float], window: float) -> tuple[float, float]:
    """Connections/s over the first and the last ``window`` share of ``done_at`` (sorted).

    The start rate counts from ``started``; the end rate between the completions that
    bound the last window, so a ramp that slows as the count grows shows it.
    """
    n = len(done_at)
    if n == 0:
        return 0.0, 0.0
    k = max(1, int(n * window))
    first = k / max(done_at[k - 1] - started, 1e-6)
    before_last = done_at[n - k - 1] if n > k else started
    last = k / max(done_at[-1] - before_last, 1e-6)
    return first, last


@dataclass
class Ramp:
    """What the ramp reached: connected links, completion times, failures."""

    started: float
    connected: list[MqttLink] = field(default_factory=list)
    done_at: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    attempted: int = 0
    #: Set when the measurement is abandoned: no further connect is started.
    stopping: bool = False

    @property
    def seconds(self) -> float:
        """From the first connect started to the last one completed."""
        return (self.done_at[-1] - self.started) if self.done_at else 0.0


async def ramp(
    links: Sequence[MqttLink], budget_s: float, progress: Progress, result: Ramp | None = None
) -> Ramp:
    """Connect ``links``, :data:`IN_FLIGHT` at a time, starting none after ``budget_s``
    (nor once ``result.stopping`` is set).

    Nothing is cancelled at the budget: connects in flight complete (or fail by their own
    timeout), which keeps every connection's bookkeeping whole and every one closable.
    """
    result = result or Ramp(started=time.perf_counter())
    deadline = result.started + budget_s
    pending = iter(links)
    step = max(1000, len(links) // 10)

    async def worker() -> None:
        for link in pending:
            if result.stopping or time.perf_counter() >= deadline:
                return
            result.attempted += 1
            try:
                await link.connect(lambda _k, _p: None, will=_status_payload(link.device_id))
            except LinkError as error:
                result.errors.append(str(error))
                continue
            except Exception as error:
                # Counted too: one odd failure must not end this worker while the others
                # go on connecting (and the final close would race them).
                result.errors.append(f"{link.device_id}: {type(error).__name__}: {error}")
                continue
            result.connected.append(link)
            result.done_at.append(time.perf_counter())
            if len(result.connected) % step == 0:
                progress(
                    f"devices: {len(result.connected)} connected after "
                    f"{result.done_at[-1] - result.started:.1f} s"
                )

    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return result


async def close_all(links: Sequence[MqttLink]) -> None:
    """Disconnect every link (a normal DISCONNECT: no last will is published)."""
    for start in range(0, len(links), CLOSE_BATCH):
        await asyncio.gather(
            *(link.aclose() for link in links[start : start + CLOSE_BATCH]),
            return_exceptions=True,
        )


def resumed_figures(
    again: Ramp,
    cpu: tuple[float, float | None, float | None],
    *,
    counts: ResumptionCounts,
    full_rate: float,
    full_client_ms: float,
    full_broker_ms: float | None,
) -> list[Figure]:
    """The resumed ramp's figures, each with the full-handshake one as its baseline."""
    n = len(again.connected)
    if n == 0:
        return []
    client_cpu, broker_before, broker_after = cpu
    rate = n / again.seconds if again.seconds > 0 else 0.0
    note = (
        f"goal >= {GOAL_RAMP_PER_S:.0f}/s; the same devices reconnecting with the TLS 1.3 "
        f"ticket of their first connect: {counts.resumed} resumed, {counts.full} full "
        f"handshakes in all (both ramps); {n} reconnected in {again.seconds:.1f} s; "
        f"load average {os.getloadavg()[0]:.1f}; baseline: the full-handshake ramp"
    )
    if again.errors:
        note += f"; {len(again.errors)} failed, first: {again.errors[0][:160]}"
    figures = [
        Figure("devices.ramp_rate.resumed", round(rate, 1), "connections/s", full_rate, note),
        Figure(
            "devices.client_cpu_per_connect.resumed",
            round(1000 * client_cpu / n, 2),
            "ms",
            round(full_client_ms, 2),
            "baseline: a full mTLS handshake",
        ),
    ]
    if broker_before is not None and broker_after is not None:
        figures.append(
            Figure(
                "devices.broker_cpu_per_connect.resumed",
                round(1000 * (broker_after - broker_before) / n, 2),
                "ms",
                round(full_broker_ms, 2) if full_broker_ms is not None else None,
                "baseline: a full mTLS handshake",
            )
        )
    return figures


async def _timed_ramp(
    links: Sequence[MqttLink],
    budget_s: float,
    progress: Progress,
    reached: Ramp,
    broker_pid: int | None,
) -> tuple[float, float | None, float | None]:
    """:func:`ramp` with its CPU: (client CPU s, broker CPU s before, after).

    Abandoned (the runner's cap), a connect cancelled half-way would leave its socket open
    and its SUBACK unmatched, so those in flight finish first; the caller closes them all.
    """
    cpu_before = time.process_time()
    broker_before = cpu_seconds(broker_pid)
    ramping = asyncio.create_task(ramp(links, budget_s, progress, reached))
    try:
        await asyncio.shield(ramping)
    except asyncio.CancelledError:
        reached.stopping = True
        await asyncio.wait([ramping], timeout=DRAIN_S)
        ramping.cancel()
        raise
    return time.process_time() - cpu_before, broker_before, cpu_seconds(broker_pid)


def issue_devices(ctx: Any, ids: Sequence[str], progress: Progress) -> tuple[float, int]:
    """Issue (or reuse) every device certificate; (seconds, newly issued)."""
    devices_dir = Path(ctx.pki.root) / "devices"
    started = time.perf_counter()
    new = 0
    for index, device_id in enumerate(ids, 1):
        # The PKI reuses a certificate it issued before; count the ones made now.
        new += not (devices_dir / f"{device_id}.crt").exists()
        ctx.pki.device(device_id)
        if index % 2000 == 0:
            progress(f"devices: {index}/{len(ids)} certificates ready")
    return time.perf_counter() - started, new


def _links(ctx: Any, ids: Sequence[str], sessions: TlsSessions) -> list[MqttLink]:
    site = ctx.info.site(getattr(ctx, "site_id", "a"))
    ca = Path(ctx.info.ca)
    links = []
    for device_id in ids:
        pair = ctx.pki.device(device_id)
        context = device_tls_context(ca, pair.cert, pair.key)
        links.append(
            MqttLink(
                device_id,
                site.mqtt.host,
                site.mqtt.port,
                context,
                timeout_s=60,
                sessions=sessions,
            )
        )
    return links


def broker_pid_of(ctx: Any) -> int | None:
    bench = getattr(ctx, "bench", None)
    if bench is None:
        return None
    try:
        pid = bench.service(getattr(ctx, "site_id", "a"), "mosquitto").pid
    except Exception:  # a bench without a local broker process (docker provider)
        return None
    return pid if isinstance(pid, int) else None


async def measure(ctx: Any, devices: int | None = None) -> list[Figure]:
    """Connect ``devices`` (default: the run's config, else 5,000; 100 in quick runs)."""
    config = getattr(ctx, "config", None)
    quick = bool(getattr(config, "quick", False))
    count = (
        devices or getattr(config, "devices", None) or (QUICK_DEVICES if quick else DEFAULT_DEVICES)
    )
    budget_s = float(
        getattr(config, "ramp_budget_s", None) or PerfConfig(devices=count).ramp_budget_s
    )
    progress: Progress = getattr(ctx, "progress", lambda _text: None)
    limit = raise_nofile_limit(count + 1024)
    ids = [f"perf-dev-{n:05d}" for n in range(count)]

    # Before the clock: certificates (issued once per state directory) and TLS contexts.
    progress(f"devices: {count} device certificates (issued once, then reused) and contexts")
    issue_s, issued = await asyncio.to_thread(issue_devices, ctx, ids, progress)
    rss_before = _rss_kib()
    started = time.perf_counter()
    sessions = TlsSessions()
    links = await asyncio.to_thread(_links, ctx, ids, sessions)
    progress(
        f"devices: certificates ready in {issue_s:.1f} s ({issued} new), "
        f"TLS contexts in {time.perf_counter() - started:.1f} s"
    )

    broker_pid = broker_pid_of(ctx)
    progress(
        f"devices: connecting {count} mTLS devices, {IN_FLIGHT} at a time, "
        f"budget {budget_s:.0f} s (fd limit {limit})"
    )
    reached = Ramp(started=time.perf_counter())
    again = Ramp(started=0.0)
    sample: Sequence[MqttLink] = ()
    acked = 0
    try:
        full = await _timed_ramp(links, budget_s, progress, reached, broker_pid)
        # The cores are shared (broker, backend, other work): the 1-minute load average
        # says how much of the CPU ceiling was there to be had.
        load_1m = os.getloadavg()[0]
        n = len(reached.connected)
        if n == 0:
            first = reached.errors[0] if reached.errors else "none was started"
            raise BenchError(f"no simulated device connected; first error: {first[:300]}")
        rss_per_device = (_rss_kib() - rss_before) / n

        # What holding them costs: idle CPU per held connection (keepalive timers) — a
        # ceiling on devices per process.
        hold_s = 2.0 if quick else 5.0
        idle_before = time.process_time()
        await asyncio.sleep(hold_s)
        idle_share = (time.process_time() - idle_before) / hold_s

        # Prove the connections carry traffic: a sample publishes its status, QoS 1.
        sample = reached.connected[: min(100, n)]
        results = await asyncio.gather(
            *(
                link.publish(MessageKind.STATUS, _status_payload(link.device_id), 1)
                for link in sample
            ),
            return_exceptions=True,
        )
        acked = sum(1 for r in results if not isinstance(r, BaseException) and r.accepted)

        # The same devices reconnect, each offering the ticket of its first connect (the
        # broker stayed up, so it still holds the ticket key): the resumed ramp.
        await close_all(reached.connected)
        progress(f"devices: reconnecting the {n} devices with their TLS session tickets")
        again.started = time.perf_counter()
        resumed = await _timed_ramp(reached.connected, budget_s, progress, again, broker_pid)
    finally:
        closing = time.perf_counter()
        # Every link, not only the connected ones: after a cancellation some are half-way.
        await close_all(links)
        if reached.connected:
            progress(
                f"devices: closed {len(reached.connected)} connections in "
                f"{time.perf_counter() - closing:.1f} s"
            )
    client_cpu, broker_before, broker_after = full
    n = len(reached.connected)

    rate = n / reached.seconds if reached.seconds > 0 else 0.0
    start_rate, end_rate = window_rates(reached.started, reached.done_at, RAMP_WINDOW)
    client_ms = 1000 * client_cpu / n
    broker_ms = (
        1000 * (broker_after - broker_before) / n
        if broker_before is not None and broker_after is not None
        else None
    )
    cores = os.cpu_count() or 1
    ceiling = ""
    if broker_ms is not None and client_ms + broker_ms > 0:
        # Both ends of every handshake run on this machine: CPU per connect bounds the rate.
        ceiling = (
            f"; CPU ceiling {1000 * cores / (client_ms + broker_ms):.0f}/s on {cores} shared "
            f"cores ({client_ms:.1f} ms client + {broker_ms:.1f} ms broker per mTLS connect)"
        )
    ceiling += f"; load average {load_1m:.1f} at the end of the ramp"
    if reached.attempted < count:
        stop = f"ramp budget of {budget_s:.0f} s spent after {reached.attempted} connects started"
    else:
        stop = "every requested device was started"
    note = (
        f"{n}/{count} connected in {reached.seconds:.1f} s ({stop}); "
        f"{acked}/{len(sample)} sample publishes acked; fd soft limit {limit}; "
        f"goal {GOAL_DEVICES:,} (--devices {GOAL_DEVICES})"
    )
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if n < count and soft <= count:
        note += f"; limited by RLIMIT_NOFILE {soft}"
    if reached.errors:
        note += f"; {len(reached.errors)} failed, first: {reached.errors[0][:160]}"
    if MIN_WINDOW * 2 <= n < GOAL_DEVICES:
        # Memory is what would stop a process short of the goal: say what the goal needs.
        note += f"; {GOAL_DEVICES:,} would need ~{rss_per_device * GOAL_DEVICES / 1024:,.0f} MiB"
    k = max(1, int(n * RAMP_WINDOW))
    figures = [
        Figure("devices.connected_per_process", n, "devices", note=note),
        Figure(
            "devices.ramp_rate",
            round(rate, 1),
            "connections/s",
            note=f"goal >= {GOAL_RAMP_PER_S:.0f}/s; {IN_FLIGHT} connects in flight{ceiling}",
        ),
        Figure(
            "devices.cert_issue_time",
            round(issue_s, 2),
            "s",
            note=f"before the clock: {issued} issued now, {count - issued} reused from the PKI",
        ),
        Figure(
            "devices.rss_per_device",
            round(rss_per_device, 1),
            "KiB",
            note="TLS context, connection and client state",
        ),
        Figure("devices.client_cpu_per_connect", round(client_ms, 2), "ms"),
        Figure(
            "devices.idle_cpu_holding",
            round(100 * idle_share, 1),
            "% of a core",
            note=f"holding {n} idle connections for {hold_s:g} s",
        ),
    ]
    if broker_ms is not None:
        figures.append(Figure("devices.broker_cpu_per_connect", round(broker_ms, 2), "ms"))
    figures += resumed_figures(
        again,
        resumed,
        counts=sessions.counts,
        full_rate=round(rate, 1),
        full_client_ms=client_ms,
        full_broker_ms=broker_ms,
    )
    if k >= MIN_WINDOW:
        figures[2:2] = [
            Figure(
                "devices.ramp_rate.start",
                round(start_rate, 1),
                "connections/s",
                note=f"over the first {k} connections",
            ),
            Figure(
                "devices.ramp_rate.end",
                round(end_rate, 1),
                "connections/s",
                note=f"over the last {k} connections, holding the others meanwhile",
            ),
        ]
    return figures
