"""``make bench`` (``python -m bench.perf``): one bench, every measurement, one table.

Starts its own bench (site ``a``; plus site ``b`` when the federation measurement runs),
hands a :class:`PerfContext` to each measurement module's ``async def measure(ctx)``, prints
one table and merges every figure into ``.bench/results.json`` (schema in DESIGN.md). A
measurement module that is not in this build is skipped with a note; one that fails is
reported (a FAILED row in the table) and the others still run; the exit code says
something failed.

Each run starts from fresh site state (broker persistence, database, streams): messages a
previous run left queued for the backend's persistent MQTT session would otherwise be
ingested first and sit in front of every measured message. The PKI is kept, so device
certificates are issued once per state directory.
"""

from __future__ import annotations

import asyncio
import importlib
import shutil
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.benchfile import BenchInfo, read_bench_file
from bench.errors import BenchError, BenchFileError
from bench.perf.figures import Figure, write_results
from bench.pki import Pki
from bench.services.process import tcp_accepts
from bench.site import BenchOptions, RunningBench, start_bench

DEFAULT_RESULTS = Path(".bench") / "results.json"
DEFAULT_STATE_DIR = Path(".bench") / "perf"


#: Simulated mTLS devices connected by default: fits ``make bench`` in its ~6 minutes on a
#: 2-core machine shared with other work (ramp 70-250 connections/s seen there, TLS contexts
#: 2.5-5 ms a device); ``--devices 10000`` is the issue's goal (about 3 minutes more).
DEFAULT_DEVICES = 5_000
#: The slowest ramp the default budget allows for (connections/s).
BUDGETED_RAMP_PER_S = 50.0


@dataclass(frozen=True)
class PerfConfig:
    """Sizes of the measurements; :meth:`tiny` is the quick one the tests use."""

    quick: bool = False
    #: Messages blasted for the throughput figures (broker baseline and ingest).
    throughput_messages: int = 30_000
    #: Upper bound of the fixed "moderate" rate for the latency figures (issue: 5,000 msg/s).
    latency_rate_cap: float = 5_000.0
    #: QoS 1 telemetry queued at the broker while the backend is away, then drained, by one
    #: worker and by two (issue 17: >= 100,000). Sent by several mosquitto_pub processes:
    #: one that sends more than 65,535 quits early (bench/perf/mqtt_lines.py).
    drain_messages: int = 100_000
    #: Catch-up: the backend down this long under this rate, then restarted (issue 17).
    catchup_down_s: float = 60.0
    catchup_rate: float = 2_000.0
    latency_duration_s: float = 8.0
    #: Badge -> unlock samples, idle and under load.
    unlock_samples: int = 300
    #: Simulated devices the devices measurement connects (each its own mTLS connection).
    devices: int = DEFAULT_DEVICES
    #: Seconds the devices ramp may take; connects still pending then are not started
    #: (what was reached by then is the figure). None: enough for ``devices`` at 50/s.
    devices_ramp_budget_s: float | None = None
    #: Seconds each measurement may take before it is abandoned (devices: see timeout_for).
    measurement_timeout_s: float = 120.0
    #: Record the backend with py-spy during the ingest blast (``--profile``).
    profile: bool = False
    #: Where profiles and other by-products go.
    output_dir: Path = Path(".bench")

    @classmethod
    def tiny(cls) -> PerfConfig:
        """Seconds, not minutes: proves the pipeline and the schema, not the machine."""
        return cls(
            quick=True,
            throughput_messages=600,
            latency_rate_cap=200.0,
            latency_duration_s=1.5,
            drain_messages=600,
            catchup_down_s=3.0,
            catchup_rate=200.0,
            unlock_samples=10,
            devices=100,
            measurement_timeout_s=60.0,
        )

    @property
    def ramp_budget_s(self) -> float:
        """The devices ramp budget in force (at least 60 s; time for 50 connects/s)."""
        if self.devices_ramp_budget_s is not None:
            return self.devices_ramp_budget_s
        return max(60.0, self.devices / BUDGETED_RAMP_PER_S)

    def timeout_for(self, name: str) -> float:
        """Cap of measurement ``name``: a safety net above what the measurement budgets.

        The devices measurement ends its own ramp at :attr:`ramp_budget_s`; around it come
        certificate issuing (up to ~7 ms a device when not issued before on this state
        directory), TLS contexts, a hold and the closing of every connection.
        """
        if name == "sentinel":
            # Four parts with their own caps (bench/perf/sentinel.py: 120+150+450+150 s).
            return 910.0
        if name == "inspection_e2e":
            # Two single-worker layouts, then a doubling series with two workers.
            return 480.0
        if name == "wan":
            return 600.0  # its own bench, three runs and a 60 s cut (bench/perf/wan.py)
        if name == "ingest":
            # Two drains (1 and 2 workers) publish and then ingest their backlog: allow
            # down to 1,000 msg/s each way.
            return self.measurement_timeout_s + 4 * self.drain_messages / 1000
        if name == "ingest_catchup":
            # Live load around the outage (25 s), the restart, the backlog at >= 1,000/s.
            backlog = self.catchup_rate * self.catchup_down_s / 1000
            return self.measurement_timeout_s + self.catchup_down_s + 25 + backlog
        if name == "storm":
            # Three phases of at most 300 s each (bench/perf/storm.py) and the certificates.
            return 900.0 + self.devices * 0.01
        if name != "devices":
            return self.measurement_timeout_s
        per_device_s = 0.007 + 0.003 + 0.005  # issue + context + close, worst seen
        return self.measurement_timeout_s + self.ramp_budget_s + self.devices * per_device_s


@dataclass
class PerfContext:
    """What a measurement gets: the running bench, its PKI and the run's sizes."""

    bench: RunningBench
    config: PerfConfig
    site_id: str = "a"
    #: Numbers one measurement leaves for the next (e.g. the ingest rate this machine does).
    shared: dict[str, float] = field(default_factory=dict)

    @property
    def info(self) -> BenchInfo:
        """bench.json of the running bench."""
        return self.bench.info

    @property
    def pki(self) -> Pki:
        """The bench PKI (device and service certificates)."""
        return self.bench.pki

    def progress(self, text: str) -> None:
        """One progress line on stderr (measurements take seconds each)."""
        print(f"  .. {text}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Measurement:
    """One measurement module and how many sites it needs."""

    name: str
    module: str
    sites: int = 1
    #: Needs the Sentinel cluster (``up --sentinel``).
    sentinel: bool = False


MEASUREMENTS: tuple[Measurement, ...] = (
    Measurement("ingest", "bench.perf.ingest"),
    Measurement("ingest_catchup", "bench.perf.ingest_catchup"),
    Measurement("unlock", "bench.perf.unlock"),
    Measurement("devices", "bench.perf.devices"),
    Measurement("storm", "bench.perf.storm"),
    Measurement("federation", "bench.perf.federation", sites=2),
    Measurement("inspection", "bench.perf.inspection"),
    Measurement("emulated", "bench.perf.emulated"),
    Measurement("sentinel", "bench.perf.sentinel", sentinel=True),
    Measurement("inspection_e2e", "bench.perf.inspection_e2e", sentinel=True),
    Measurement("policy", "bench.perf.policy"),
    Measurement("policy_mqtt", "bench.perf.policy_mqtt"),
    # Starts its own two sites in network namespaces (root only; skipped elsewhere).
    Measurement("wan", "bench.perf.wan"),
)

MeasureFn = Callable[[PerfContext], Awaitable[list[Figure]]]


def load_measurements(
    selected: Sequence[str] | None = None,
) -> tuple[list[tuple[Measurement, MeasureFn]], list[str]]:
    """Import the selected measurement modules; returns (available, notes on skipped)."""
    known = {measurement.name for measurement in MEASUREMENTS}
    unknown = sorted(set(selected or ()) - known)
    if unknown:
        raise BenchError(
            f"unknown measurement(s) {', '.join(unknown)}; choose from {', '.join(sorted(known))}"
        )
    available: list[tuple[Measurement, MeasureFn]] = []
    notes: list[str] = []
    for measurement in MEASUREMENTS:
        if selected and measurement.name not in selected:
            continue
        try:
            module = importlib.import_module(measurement.module)
        except ModuleNotFoundError as error:
            if error.name != measurement.module:
                raise
            notes.append(f"{measurement.name}: skipped ({measurement.module} is not in this build)")
            continue
        measure = getattr(module, "measure", None)
        if measure is None:
            notes.append(f"{measurement.name}: skipped ({measurement.module} has no measure())")
            continue
        available.append((measurement, measure))
    return available, notes


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def render_figures(figures: Sequence[Figure], failures: Sequence[str] = ()) -> Any:
    """The results table (rich); each failed measurement is a red FAILED row."""
    from rich.table import Table

    table = Table(title="make bench")
    for column in ("figure", "value", "unit", "baseline", "ratio", "note"):
        right = column in ("value", "baseline", "ratio")
        table.add_column(column, justify="right" if right else "left")
    for figure in figures:
        table.add_row(
            figure.name,
            _fmt(figure.value),
            figure.unit,
            _fmt(figure.baseline),
            _fmt(figure.ratio),
            figure.note,
        )
    for failure in failures:
        name, _, reason = failure.partition(": ")
        table.add_row(f"{name} (measurement)", "FAILED", "", "", "", reason, style="red")
    return table


async def run_measurements(
    bench: RunningBench,
    config: PerfConfig,
    measurements: Sequence[tuple[Measurement, MeasureFn]],
) -> tuple[list[Figure], list[str]]:
    """Run each measurement in turn; returns the figures and one line per failure."""
    figures: list[Figure] = []
    failures: list[str] = []
    shared: dict[str, float] = {}
    for measurement, measure in measurements:
        ctx = PerfContext(bench=bench, config=config, shared=shared)
        print(f"-> {measurement.name}", file=sys.stderr, flush=True)
        started = time.monotonic()
        cap_s = config.timeout_for(measurement.name)
        try:
            async with asyncio.timeout(cap_s):
                got = await measure(ctx)
        except TimeoutError:
            failures.append(f"{measurement.name}: abandoned after its cap of {cap_s:.0f} s")
            continue
        except BenchError as error:
            failures.append(f"{measurement.name}: {error}")
            continue
        except Exception as error:
            failures.append(f"{measurement.name}: {type(error).__name__}: {error}")
            traceback.print_exc(file=sys.stderr)
            continue
        figures.extend(got)
        print(
            f"   {measurement.name}: {len(got)} figure(s) in {time.monotonic() - started:.1f} s",
            file=sys.stderr,
            flush=True,
        )
    return figures, failures


def fresh_site_state(state_dir: Path, sites: Sequence[str]) -> None:
    """Delete the site directories a previous run left in ``state_dir`` (the PKI stays).

    Left alone when a bench still answers there: :func:`start_bench` then refuses with a
    clear message instead of us pulling its files away.
    """
    try:
        info = read_bench_file(state_dir)
    except BenchFileError:
        info = None
    if info is not None and any(
        tcp_accepts(site.mqtt.host, site.mqtt.port, 0.3) for site in info.sites.values()
    ):
        return
    # The Sentinel's JetStream store too: thousands of consumers a fan-out run left behind
    # made the next cluster spend minutes recovering them before its worker was ready.
    for name in (*sites, "sentinel"):
        if (state_dir / name).exists():
            print(f"fresh state: removing {state_dir / name} of an earlier run", file=sys.stderr)
            shutil.rmtree(state_dir / name, ignore_errors=True)


def run(
    config: PerfConfig,
    *,
    state_dir: Path = DEFAULT_STATE_DIR,
    results: Path = DEFAULT_RESULTS,
    selected: Sequence[str] | None = None,
) -> tuple[list[Figure], list[str]]:
    """Start the bench, measure, stop the bench, write ``results``; (figures, failures).

    A run of every measurement replaces ``results``, so no figure of an earlier run (or of
    a measurement that failed now) passes for a current one; ``selected`` runs merge.
    """
    measurements, notes = load_measurements(selected)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    sites = ["a", "b"] if any(m.sites > 1 for m, _ in measurements) else ["a"]
    print(f"starting a bench with site(s) {', '.join(sites)} in {state_dir}", file=sys.stderr)
    fresh_site_state(state_dir, sites)
    sentinel = any(m.sentinel for m, _ in measurements)
    with start_bench(BenchOptions(sites=sites, state_dir=state_dir, sentinel=sentinel)) as bench:
        figures, failures = asyncio.run(run_measurements(bench, config, measurements))
    write_results(figures, results, replace=not selected)
    return figures, failures
