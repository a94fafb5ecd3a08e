"""``make bench`` (``python -m bench.perf``): one bench, every measurement, one table.

Starts its own bench (site ``a``; plus site ``b`` when the federation measurement runs),
hands a :class:`PerfContext` to each measurement module's ``async def measure(ctx)``, prints
one table and merges every figure into ``.bench/results.json`` (schema in DESIGN.md). A
measurement module that is not in this build is skipped with a note; one that fails is
reported and the others still run (the exit code says something failed).
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.benchfile import BenchInfo
from bench.errors import BenchError
from bench.perf.figures import Figure, write_results
from bench.pki import Pki
from bench.site import BenchOptions, RunningBench, start_bench

DEFAULT_RESULTS = Path(".bench") / "results.json"
DEFAULT_STATE_DIR = Path(".bench") / "perf"


@dataclass(frozen=True)
class PerfConfig:
    """Sizes of the measurements; :meth:`quick` is the tiny one the tests use."""

    quick: bool = False
    #: Messages blasted for the throughput figures (broker baseline and ingest).
    throughput_messages: int = 30_000
    #: Upper bound of the fixed "moderate" rate for the latency figures (issue: 5,000 msg/s).
    latency_rate_cap: float = 5_000.0
    latency_duration_s: float = 8.0
    #: Badge -> unlock samples, idle and under load.
    unlock_samples: int = 300
    #: Seconds each measurement may take before it is abandoned.
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
            unlock_samples=10,
            measurement_timeout_s=60.0,
        )


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


MEASUREMENTS: tuple[Measurement, ...] = (
    Measurement("ingest", "bench.perf.ingest"),
    Measurement("unlock", "bench.perf.unlock"),
    Measurement("devices", "bench.perf.devices"),
    Measurement("federation", "bench.perf.federation", sites=2),
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


def render_figures(figures: Sequence[Figure]) -> Any:
    """The results table (rich)."""
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
        try:
            async with asyncio.timeout(config.measurement_timeout_s):
                got = await measure(ctx)
        except TimeoutError:
            failures.append(f"{measurement.name}: over {config.measurement_timeout_s:g} s")
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


def run(
    config: PerfConfig,
    *,
    state_dir: Path = DEFAULT_STATE_DIR,
    results: Path = DEFAULT_RESULTS,
    selected: Sequence[str] | None = None,
) -> tuple[list[Figure], list[str]]:
    """Start the bench, measure, stop the bench, write ``results``; (figures, failures)."""
    measurements, notes = load_measurements(selected)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    sites = ["a", "b"] if any(m.sites > 1 for m, _ in measurements) else ["a"]
    print(f"starting a bench with site(s) {', '.join(sites)} in {state_dir}", file=sys.stderr)
    with start_bench(BenchOptions(sites=sites, state_dir=state_dir)) as bench:
        figures, failures = asyncio.run(run_measurements(bench, config, measurements))
    write_results(figures, results)
    return figures, failures
