"""Reading what the ingest wrote: :class:`StreamWatcher`, a thread on one Redis stream that
keeps the traced entries of one client (arrival time, entry time, send time, duplicates).

Every load message carries the ``aurora-trace`` property (``<client>:<seq>:<sent_ns>``);
the backend copies it into the stream entry, so latency, loss and duplicates are counted
without touching the contract JSON. Send and read times are ``time.time_ns()`` of this
host (the publishers run here).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from bench.load.clients import MeasurementError
from bench.load.trace import TRACE_FIELD, TraceError, decode_trace


@dataclass(frozen=True, slots=True)
class Arrival:
    """One traced entry seen in the stream: read time (ns), the entry id's ms stamp and the
    send time the trace carries (ns)."""

    received_ns: int
    entry_ms: int
    sent_ns: int


def _value_of(fields: dict[str, str]) -> int:
    """The reading's ``value`` as a sequence number (-1 when it carries none)."""
    try:
        value = json.loads(fields.get("data", "")).get("value")
    except (ValueError, AttributeError):
        return -1
    return int(value) if isinstance(value, int | float) else -1


class StreamWatcher:
    """A thread reading one Redis stream from "now", keeping arrivals of one client's traces.

    The read position is fixed at construction, before anything is published, so no entry
    can slip between. Blocking XREAD releases the GIL, so the publisher thread keeps going.
    """

    def __init__(
        self, redis_url: str, stream: str, client: str, *, seq_in_value: bool = False
    ) -> None:
        self.client = client
        #: Number arrivals by the reading's ``value`` instead of the trace's seq (a C
        #: publisher sends one constant trace; the load then counts in the value).
        self.seq_in_value = seq_in_value
        self.stream = stream
        self._redis = redis.Redis.from_url(redis_url, decode_responses=True)
        newest = self._redis.xrevrange(stream, count=1)
        self._position = str(newest[0][0]) if newest else "0-0"
        self.arrivals: dict[int, Arrival] = {}
        #: Every matching entry, duplicates of one trace included (constant-trace runs).
        self.entries = 0
        self.first_ms: int | None = None
        self.last_ms: int | None = None
        #: Entry-id time (ms) of every matching entry, in stream order.
        self.entry_ms: list[int] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch-{stream}", daemon=True)

    def __enter__(self) -> StreamWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._redis.close()

    @property
    def duplicates(self) -> int:
        """Entries beyond the first of each trace (0 when every message landed once)."""
        with self._cond:
            return self.entries - len(self.arrivals)

    def _run(self) -> None:
        while not self._stop.is_set():
            batches: Any = self._redis.xread({self.stream: self._position}, count=5000, block=200)
            received_ns = time.time_ns()
            if not batches:
                continue
            found: dict[int, Arrival] = {}
            stamps: list[int] = []
            matched = 0
            first_ms: int | None = None
            last_ms = 0
            for _, entries in batches:
                for entry_id, fields in entries:
                    self._position = entry_id
                    raw = fields.get(TRACE_FIELD)
                    if raw is None:
                        continue
                    try:
                        trace = decode_trace(raw)
                    except TraceError:
                        continue
                    if trace.client == self.client:
                        entry_ms = int(entry_id.split("-")[0])
                        seq = _value_of(fields) if self.seq_in_value else trace.seq
                        found.setdefault(seq, Arrival(received_ns, entry_ms, trace.sent_ns))
                        matched += 1
                        stamps.append(entry_ms)
                        first_ms = entry_ms if first_ms is None else first_ms
                        last_ms = entry_ms
            if matched:
                with self._cond:
                    for seq, arrival in found.items():
                        self.arrivals.setdefault(seq, arrival)
                    self.entries += matched
                    self.entry_ms += stamps
                    if self.first_ms is None:
                        self.first_ms = first_ms
                    self.last_ms = last_ms
                    self._cond.notify_all()

    def wait_entries(self, count: int, timeout_s: float) -> None:
        """Block until ``count`` matching entries arrived in total (or raise)."""
        self._wait(
            lambda: max(0, count - self.entries),
            timeout_s,
            lambda _: f"{self.entries} of {count} messages of {self.client} in {self.stream}",
        )

    def wait_for(self, seqs: range, timeout_s: float) -> None:
        """Block until every sequence number in ``seqs`` arrived (or raise)."""
        self._wait(
            lambda: sum(1 for seq in seqs if seq not in self.arrivals),
            timeout_s,
            lambda left: f"{left} of {len(seqs)} messages of {self.client} not in {self.stream}",
        )

    def _wait(
        self, missing: Callable[[], int], timeout_s: float, failure: Callable[[int], str]
    ) -> None:
        """Block until nothing is ``missing``; after ``timeout_s``, raise what ``failure`` says."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while left := missing():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise MeasurementError(f"{failure(left)} after {timeout_s:g} s")
                self._cond.wait(min(remaining, 0.5))
