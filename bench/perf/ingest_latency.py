"""Ingest latency with the load generator in its own process (issue 17).

``ingest.latency@<R>msg/s.p50|p99``: publish -> telemetry stream entry at R msg/s (the
issue's 5,000), measured in :data:`LATENCY_RUNS` runs; the figures are the median run's,
the spread is in the note and ``.p99.max`` is the worst run. The load is Mosquitto's C
publisher in its own process (:class:`PacedLines`), fed lines on a schedule from here: a
Python generator (:mod:`bench.perf.ingest_load`, ~45 us of CPU a message) could not get
the CPU for 5,000 msg/s on the shared machine and queued the readings itself. A reading's
send time is when its line was written to the pipe; its arrival is the stream entry's id
(Redis's clock on the same host, 1 ms resolution).
"""

from __future__ import annotations

import statistics
import time

from backend.bus import TELEMETRY_STREAM
from backend.contract import MessageKind, TelemetryMessage, encode, topic_for
from bench.load.summary import percentile_of
from bench.load.trace import TRACE_PROPERTY, Trace
from bench.perf.figures import Figure
from bench.perf.ingest_watch import StreamWatcher
from bench.perf.mqtt_lines import LinePublisher
from bench.perf.runner import PerfContext
from bench.perf.site_clients import tls_args

#: The latency readings' metric: no threshold checks it, so a sequence number as its value
#: raises no anomaly alert.
METRIC = "perf_sequence"
#: Seconds at the rate before the measured readings of a run.
WARM_UP_S = 1.0
#: Runs at the goal rate; the issue asks for a spread, not one run.
LATENCY_RUNS = 3
GOAL_P99_MS = 20.0


class PacedLines:
    """``mosquitto_pub -l`` (C, its own process) fed from this process on a schedule:
    reading i carries ``value`` i (metric :data:`METRIC`, which no threshold checks) and is
    stamped when its line is written to the pipe; the trace property is one constant run
    marker, which the watcher filters on."""

    def __init__(self, ctx: PerfContext, device_id: str) -> None:
        args = tls_args(ctx, ctx.pki.device(device_id), device_id)
        marker = Trace(device_id, 0, time.time_ns()).encode()
        topic = topic_for(MessageKind.TELEMETRY, device_id)
        self.device_id = device_id
        self.publisher = LinePublisher(args, topic, (TRACE_PROPERTY, marker))
        self.sent_ns: dict[int, int] = {}

    def _line(self, seq: int) -> bytes:
        reading = TelemetryMessage(
            device_id=self.device_id, metric=METRIC, value=float(seq), unit="n"
        )
        return encode(reading) + b"\n"

    def send(self, seq: int) -> None:
        """One reading now."""
        self.sent_ns[seq] = time.time_ns()
        self.publisher.send_lines(self._line(seq))

    def paced(self, first: int, count: int, rate: float) -> float:
        """Readings ``first``.. at ``rate`` (due ones written together); the achieved rate."""
        started = time.perf_counter()
        seq, end = first, first + count
        while seq < end:
            due = min(end, first + int((time.perf_counter() - started) * rate) + 1)
            if due > seq:
                data = b"".join(self._line(index) for index in range(seq, due))
                now = time.time_ns()
                self.publisher.send_lines(data)
                for index in range(seq, due):
                    self.sent_ns[index] = now
                seq = due
            else:
                time.sleep(0.0002)
        return count / (time.perf_counter() - started)

    def close(self) -> None:
        """Let mosquitto_pub send what it has and exit."""
        self.publisher.close()


def latency_run(ctx: PerfContext, device_id: str, rate: float, seconds: float) -> tuple[float, ...]:
    """One run: (p50 ms, p99 ms, achieved rate) of ``seconds`` of readings at ``rate`` after
    a reading alone (the first of a device registers it, a database write) and
    :data:`WARM_UP_S` at the rate."""
    site = ctx.info.site(ctx.site_id)
    with StreamWatcher(site.redis, TELEMETRY_STREAM, device_id, seq_in_value=True) as watcher:
        load = PacedLines(ctx, device_id)
        try:
            load.send(0)
            watcher.wait_for(range(1), 60.0)
            # The first second at the rate is not measured: a run starts from an idle
            # pipeline (cold caches, no batch in flight), as no steady load does.
            warm = int(rate * WARM_UP_S)
            count = max(int(rate * seconds), 1)
            achieved = load.paced(1, warm + count, rate)
            seqs = range(warm + 1, warm + count + 1)
            watcher.wait_for(range(1, warm + count + 1), 60.0)
        finally:
            load.close()
        # Arrival = the entry id's time (Redis's clock, this host, ms): when the entry was
        # written, not when this process's watcher thread got round to reading it.
        latencies = [
            max(watcher.arrivals[seq].entry_ms * 1e6 - load.sent_ns[seq], 0) / 1e6 for seq in seqs
        ]
    p50 = percentile_of(latencies, 0.50)
    p99 = percentile_of(latencies, 0.99)
    assert p50 is not None and p99 is not None
    return p50, p99, achieved


def latency_figures(ctx: PerfContext, rate: float, seconds: float, runs: int) -> list[Figure]:
    """``runs`` runs at ``rate``: median p50/p99, the spread in the note, the worst p99."""
    results = [
        latency_run(ctx, f"perf-latency-{index + 1:04d}", rate, seconds) for index in range(runs)
    ]
    for p50, p99, achieved in results:
        ctx.progress(f"  run: p50 {p50:.1f} ms, p99 {p99:.1f} ms at {achieved:,.0f} msg/s")
    p99s = sorted(p99 for _, p99, _ in results)
    middle = statistics.median_low(p99s)
    chosen = next(r for r in results if r[1] == middle)
    spread = " / ".join(f"{p99:.1f}" for _, p99, _ in results)
    note = (
        f"goal p99 <= {GOAL_P99_MS:g} ms; C publisher in its own process; median of {runs} "
        f"run(s) of {seconds:g} s (after {WARM_UP_S:g} s at the rate), p99 per run "
        f"{spread} ms; achieved "
        f"{min(r[2] for r in results):,.0f}-{max(r[2] for r in results):,.0f} msg/s"
    )
    name = f"ingest.latency@{rate:g}msg/s"
    figures = [
        Figure(f"{name}.p50", round(chosen[0], 2), "ms", note=note),
        Figure(f"{name}.p99", round(chosen[1], 2), "ms", note=note),
    ]
    if runs > 1:
        figures.append(
            Figure(f"{name}.p99.max", round(p99s[-1], 2), "ms", note=f"worst of {runs} runs")
        )
    return figures
