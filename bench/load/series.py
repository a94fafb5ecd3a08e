"""Per-second time series of a load run, for the HTML report.

Each process counts, per wall-clock second, the messages it sent, found ingested and
declared lost, the devices that connected, and a latency histogram per stage (``connect``,
``publish``, ``ingest``, ``unlock``) with logarithmic buckets (8 per doubling, ~9 % wide).
Workers send what they counted since their last report to the master, which merges; seconds
are epoch seconds, so series of processes on one host line up. Counting sent and ingested
messages ourselves is what makes the msg/s chart honest: locust's own chart adds every
request type (acks, ingests, connects) into one "RPS" line.

Pure: the caller passes the time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict

from bench.load.summary import percentile

STAGES = ("connect", "publish", "ingest", "unlock")
COUNTERS = ("sent", "ingested", "lost", "connected")
BUCKETS_PER_DOUBLING = 8
_SMALLEST_MS = 0.01


def bucket_of(latency_ms: float) -> int:
    """The histogram bucket of a latency (0 holds everything up to 10 microseconds)."""
    if not latency_ms > _SMALLEST_MS:
        return 0
    return int(math.log2(latency_ms / _SMALLEST_MS) * BUCKETS_PER_DOUBLING)


def bucket_value(bucket: int) -> float:
    """The middle of a bucket, in ms (geometric)."""
    return _SMALLEST_MS * 2 ** ((bucket + 0.5) / BUCKETS_PER_DOUBLING)


class SeriesData(BaseModel):
    """What a run recorded: ``counts[name][second]`` and ``latency[stage][second][bucket]``."""

    model_config = ConfigDict(frozen=True)

    counts: dict[str, dict[int, int]] = {}
    latency: dict[str, dict[int, dict[int, int]]] = {}

    def seconds(self) -> range:
        """Every second from the first to the last one recorded (empty when none)."""
        keys = [s for rows in self.counts.values() for s in rows] + [
            s for rows in self.latency.values() for s in rows
        ]
        return range(min(keys), max(keys) + 1) if keys else range(0)

    def count(self, name: str, second: int) -> int:
        """``name`` events in ``second``."""
        return self.counts.get(name, {}).get(second, 0)

    def histogram(self, stage: str, second: int | None = None) -> dict[float, int]:
        """Latency histogram (ms -> count) of ``stage`` in one second, or over the run."""
        rows = self.latency.get(stage, {})
        picked = [rows.get(second, {})] if second is not None else list(rows.values())
        merged: dict[float, int] = {}
        for row in picked:
            for bucket, count in row.items():
                value = bucket_value(bucket)
                merged[value] = merged.get(value, 0) + count
        return merged

    def quantile(self, stage: str, fraction: float, second: int | None = None) -> float | None:
        """Nearest-rank quantile of ``stage`` latency (bucket middles), or None when empty."""
        return percentile(self.histogram(stage, second), fraction)


class Series:
    """A mutable recorder; :meth:`take` hands over what it holds and starts afresh."""

    def __init__(self) -> None:
        self._counts: dict[str, dict[int, int]] = {}
        self._latency: dict[str, dict[int, dict[int, int]]] = {}

    def add(self, name: str, at_s: float, count: int = 1) -> None:
        """Count ``count`` events ``name`` (one of :data:`COUNTERS`) at ``at_s``."""
        row = self._counts.setdefault(name, {})
        second = int(at_s)
        row[second] = row.get(second, 0) + count

    def latency(self, stage: str, at_s: float, latency_ms: float) -> None:
        """Record one latency of ``stage`` observed at ``at_s``."""
        seconds = self._latency.setdefault(stage, {})
        buckets = seconds.setdefault(int(at_s), {})
        bucket = bucket_of(latency_ms)
        buckets[bucket] = buckets.get(bucket, 0) + 1

    def merge(self, data: SeriesData | Mapping[str, object]) -> None:
        """Add another recorder's data (a worker's report)."""
        other = data if isinstance(data, SeriesData) else SeriesData.model_validate(data)
        for name, rows in other.counts.items():
            mine = self._counts.setdefault(name, {})
            for second, count in rows.items():
                mine[second] = mine.get(second, 0) + count
        for stage, seconds in other.latency.items():
            stage_rows = self._latency.setdefault(stage, {})
            for second, buckets in seconds.items():
                row = stage_rows.setdefault(second, {})
                for bucket, count in buckets.items():
                    row[bucket] = row.get(bucket, 0) + count

    def snapshot(self) -> SeriesData:
        """A copy of everything recorded."""
        return SeriesData.model_validate({"counts": self._counts, "latency": self._latency})

    def take(self) -> SeriesData:
        """Everything recorded since the last :meth:`take`, and forget it."""
        data = self.snapshot()
        self._counts, self._latency = {}, {}
        return data
