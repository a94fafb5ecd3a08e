"""Loss accounting for load runs: what each client sent, what the backend ingested.

A pure bookkeeping object (no I/O, no clocks of its own): the sender records every trace it
publishes, the ingest watcher reports every trace it finds in a Redis stream entry, and at
the end of the run whatever is still pending is a loss. Sequence numbers make the three
odd cases visible: a *duplicate* (a QoS 1 redelivery the backend wrote twice), a *gap*
(pending numbers below the highest one already ingested: reordered or lost) and a *late*
arrival (ingested after it was already counted lost).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.load.trace import Trace


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message seen ingested for the first time."""

    trace: Trace
    kind: str
    latency_ns: int

    @property
    def latency_ms(self) -> float:
        """Publish -> ingested, in milliseconds."""
        return self.latency_ns / 1e6


@dataclass(frozen=True, slots=True)
class Loss:
    """A message sent but never ingested before the ledger was closed for its client."""

    client: str
    seq: int
    kind: str


@dataclass(slots=True)
class LedgerCounts:
    """Running totals; ``foreign`` counts entries of other clients or earlier runs."""

    sent: int = 0
    ingested: int = 0
    duplicates: int = 0
    lost: int = 0
    late: int = 0
    foreign: int = 0


@dataclass(slots=True)
class _Client:
    next_seq: int = 0
    highest_ingested: int = -1
    pending: dict[int, tuple[str, int]] = field(default_factory=dict)
    lost: set[int] = field(default_factory=set)
    closed: bool = False


class Ledger:
    """Sent-but-not-yet-ingested messages per client.

    ``run_started_ns`` fences off earlier runs: client ids are fixed and reproducible, so a
    stream may still hold (or the backend may still be ingesting) entries with the same ids
    from a previous run; those are counted as foreign, never as duplicates.
    """

    def __init__(self, run_started_ns: int) -> None:
        self.run_started_ns = run_started_ns
        self.counts = LedgerCounts()
        self._clients: dict[str, _Client] = {}

    def register(self, client: str) -> None:
        """Make ``client`` known, so its ingested entries are ours even before it sends."""
        self._clients.setdefault(client, _Client())

    def knows(self, client: str) -> bool:
        """True when ``client`` publishes through this ledger."""
        return client in self._clients

    def next_trace(self, client: str, sent_ns: int) -> Trace:
        """The trace of ``client``'s next message (sequence numbers count from 0)."""
        state = self._clients.setdefault(client, _Client())
        trace = Trace(client, state.next_seq, sent_ns)
        state.next_seq += 1
        return trace

    def sent(self, trace: Trace, kind: str) -> None:
        """Record that ``trace`` was published (call after the publish was queued)."""
        state = self._clients.setdefault(trace.client, _Client())
        state.next_seq = max(state.next_seq, trace.seq + 1)
        state.pending[trace.seq] = (kind, trace.sent_ns)
        self.counts.sent += 1

    def ingested(self, trace: Trace, received_ns: int) -> Delivery | None:
        """Account one ingested entry; returns the delivery when it is new, else ``None``."""
        state = self._clients.get(trace.client)
        if state is None or trace.sent_ns < self.run_started_ns:
            self.counts.foreign += 1
            return None
        entry = state.pending.pop(trace.seq, None)
        if entry is None:
            if trace.seq in state.lost:
                state.lost.discard(trace.seq)
                self.counts.late += 1
            elif trace.seq < state.next_seq:
                self.counts.duplicates += 1
            else:
                self.counts.foreign += 1
            return None
        kind, sent_ns = entry
        state.highest_ingested = max(state.highest_ingested, trace.seq)
        self.counts.ingested += 1
        return Delivery(trace, kind, max(0, received_ns - sent_ns))

    def pending(self, client: str | None = None) -> int:
        """Messages sent but not yet ingested (of one client, or of all)."""
        if client is not None:
            state = self._clients.get(client)
            return 0 if state is None else len(state.pending)
        return sum(len(state.pending) for state in self._clients.values())

    def gaps(self, client: str) -> list[int]:
        """Pending sequence numbers below the highest ingested one: reordered or lost."""
        state = self._clients.get(client)
        if state is None:
            return []
        return sorted(seq for seq in state.pending if seq < state.highest_ingested)

    def close(self, client: str | None = None) -> list[Loss]:
        """Declare everything still pending lost (for one client, or all); returns the losses."""
        names = [client] if client is not None else list(self._clients)
        losses: list[Loss] = []
        for name in names:
            state = self._clients.get(name)
            if state is None:
                continue
            for seq, (kind, _) in sorted(state.pending.items()):
                losses.append(Loss(name, seq, kind))
                state.lost.add(seq)
            state.pending.clear()
            state.closed = True
        self.counts.lost += len(losses)
        return losses
