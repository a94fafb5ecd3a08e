"""The summary of a load run: built from locust's stats, printed as a table, saved as JSON.

Locust reports each stage of a load message as its own request type, so one stats row is
one (stage, message kind):

============  ==================================================  ===========
request type  what the response time measures                     stage
============  ==================================================  ===========
``MQTT``      TLS connect -> CONNACK (names ``connect`` and        ``connect``
              ``disconnect``)
``MQTT``      publish -> broker acknowledgement (PUBACK, QoS 1;    ``publish``
              socket write, QoS 0)
``INGEST``    publish -> entry in a Redis stream of the backend    ``ingest``
``UNLOCK``    badge read published -> ``unlock`` command received  ``unlock``
``LOST``      one failure per message never ingested               ``lost``
============  ==================================================  ===========

Everything here is pure (no locust import) so the maths is unit-tested without a run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from bench.load.problems import Problem

#: locust request type -> stage name used in summaries and assertions.
STAGE_BY_REQUEST_TYPE = {"MQTT": "publish", "INGEST": "ingest", "UNLOCK": "unlock", "LOST": "lost"}
REQUEST_TYPE_BY_STAGE = {stage: kind for kind, stage in STAGE_BY_REQUEST_TYPE.items()}
_STAGE_ORDER = ["connect", "publish", "ingest", "unlock", "lost"]
#: ``MQTT`` rows with these names are the connection, not a message kind.
CONNECTION_EVENTS = frozenset({"connect", "disconnect"})


def percentile(histogram: Mapping[int | float, int], fraction: float) -> float | None:
    """The ``fraction`` quantile (0 < fraction <= 1) of a value -> count histogram.

    Nearest-rank definition: the smallest value with at least ``ceil(fraction * n)``
    samples at or below it, so p100 is the maximum and p50 of ``[1, 2]`` is 1.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(fraction * total - 1e-9))
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return float(value)
    return float(max(histogram))  # pragma: no cover - unreachable: seen reaches total


def percentile_of(samples: Iterable[float], fraction: float) -> float | None:
    """Nearest-rank quantile of raw samples (same definition as :func:`percentile`)."""
    ordered = sorted(samples)
    if not ordered:
        return None
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    rank = max(1, math.ceil(fraction * len(ordered) - 1e-9))
    return ordered[rank - 1]


class StageStats(BaseModel):
    """One row: a stage of one message kind."""

    model_config = ConfigDict(frozen=True)

    stage: str
    name: str
    count: int
    failures: int
    rate_per_s: float
    avg_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None


class LoadCounters(BaseModel):
    """Totals the locust workers report beside the request stats."""

    model_config = ConfigDict(frozen=True)

    devices: int = 0
    connected: int = 0
    connect_failures: int = 0
    sent: int = 0
    ingested: int = 0
    lost: int = 0
    #: Sent but neither ingested nor declared lost: the run ended before they drained.
    pending: int = 0
    duplicates: int = 0
    late: int = 0
    #: Devices that finished publishing and draining.
    drained: int = 0

    @property
    def unaccounted(self) -> int:
        """Messages never seen ingested: lost plus still pending at the end."""
        return self.lost + self.pending

    def plus(self, other: LoadCounters) -> LoadCounters:
        """Field-wise sum (aggregating workers)."""
        return LoadCounters(
            **{name: getattr(self, name) + getattr(other, name) for name in type(self).model_fields}
        )


class LoadSummary(BaseModel):
    """What ``aurora-bench load --json`` writes and the assertions are checked against."""

    model_config = ConfigDict(frozen=True)

    duration_s: float
    counters: LoadCounters
    stages: list[StageStats]
    #: Devices the run asked for (``--devices``; locust's user count).
    planned_devices: int = 0
    #: Errors by cause and reason, every process merged (:mod:`bench.load.problems`).
    problems: list[Problem] = []

    @property
    def sent_per_s(self) -> float:
        """Messages published per second over the run."""
        return self.counters.sent / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def ingested_per_s(self) -> float:
        """Messages found ingested per second over the run."""
        return self.counters.ingested / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def loss_pct(self) -> float:
        """Messages never seen ingested (lost + pending) as a percentage of those sent."""
        sent = self.counters.sent
        return 100.0 * self.counters.unaccounted / sent if sent else 0.0

    def row(self, stage: str, name: str) -> StageStats | None:
        """The row of ``stage`` for ``name``, if any sample was recorded."""
        for row in self.stages:
            if row.stage == stage and row.name == name:
                return row
        return None


def stage_stats(entry: Mapping[str, Any], duration_s: float) -> StageStats | None:
    """A row from one serialized locust ``StatsEntry`` (``StatsEntry.serialize()``).

    Returns ``None`` for request types that are not load stages (e.g. locust internals).
    """
    stage = STAGE_BY_REQUEST_TYPE.get(str(entry["method"]))
    if stage is None:
        return None
    if stage == "publish" and entry["name"] in CONNECTION_EVENTS:
        stage = "connect"
    # JSON turns the histogram's int keys into strings; locust rounds them to whole ms.
    histogram = {float(key): int(count) for key, count in entry.get("response_times", {}).items()}
    count = int(entry["num_requests"])
    failures = int(entry["num_failures"])
    timed = sum(histogram.values())
    measured = stage != "lost" and timed > 0
    return StageStats(
        stage=stage,
        name=str(entry["name"]),
        count=count,
        failures=failures,
        rate_per_s=count / duration_s if duration_s > 0 else 0.0,
        avg_ms=float(entry["total_response_time"]) / timed if measured else None,
        p50_ms=percentile(histogram, 0.50) if measured else None,
        p95_ms=percentile(histogram, 0.95) if measured else None,
        p99_ms=percentile(histogram, 0.99) if measured else None,
        max_ms=float(entry["max_response_time"]) if measured else None,
    )


def summarize(
    entries: Iterable[Mapping[str, Any]],
    counters: LoadCounters,
    duration_s: float,
    *,
    planned_devices: int = 0,
    problems: list[Problem] | None = None,
) -> LoadSummary:
    """Build the run summary from serialized locust stats entries and worker counters."""
    rows = [row for entry in entries if (row := stage_stats(entry, duration_s)) is not None]
    rows.sort(key=lambda row: (_STAGE_ORDER.index(row.stage), row.name))
    return LoadSummary(
        duration_s=duration_s,
        counters=counters,
        stages=rows,
        planned_devices=planned_devices,
        problems=problems or [],
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render_summary(summary: LoadSummary) -> Any:
    """A rich renderable: totals line plus one row per stage."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    counters = summary.counters
    head = Text(
        f"devices {counters.devices}  connected {counters.connected}"
        f" (failed {counters.connect_failures})  duration {summary.duration_s:.1f} s\n"
        f"sent {counters.sent} ({summary.sent_per_s:,.0f} msg/s)  "
        f"ingested {counters.ingested} ({summary.ingested_per_s:,.0f} msg/s)  "
        f"lost {counters.unaccounted} ({summary.loss_pct:.2f} %)  duplicates {counters.duplicates}"
        + (
            f"\n{counters.pending} messages still pending when the run ended (counted as loss):"
            " raise --drain or --duration"
            if counters.pending
            else ""
        )
    )
    table = Table(title="load stages (latency in ms)")
    for column in ("stage", "kind", "count", "fail", "msg/s", "avg", "p50", "p95", "p99", "max"):
        if column in ("stage", "kind"):
            table.add_column(column, no_wrap=True)
        else:
            table.add_column(column, justify="right", no_wrap=True)
    for row in summary.stages:
        table.add_row(
            row.stage,
            row.name,
            str(row.count),
            str(row.failures),
            f"{row.rate_per_s:,.1f}",
            _ms(row.avg_ms),
            _ms(row.p50_ms),
            _ms(row.p95_ms),
            _ms(row.p99_ms),
            _ms(row.max_ms),
        )
    return Group(head, table)
