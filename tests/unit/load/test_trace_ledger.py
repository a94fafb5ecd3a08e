"""Trace encoding and loss accounting of load runs (pure, no servers)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.load.ledger import Ledger, Loss
from bench.load.trace import Trace, TraceError, decode_trace

client_ids = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)


@given(client_ids, st.integers(0, 10**15), st.integers(0, 2**63))
def test_trace_round_trips(client: str, seq: int, sent_ns: int) -> None:
    trace = Trace(client, seq, sent_ns)
    assert decode_trace(trace.encode()) == trace
    assert decode_trace(trace.encode().encode()) == trace


def test_trace_wire_form_is_client_seq_ns() -> None:
    assert Trace("esp32s3-env-01", 7, 123).encode() == "esp32s3-env-01:7:123"


@pytest.mark.parametrize(
    "bad", ["", "a:1", "a:1:2:3", "a:-1:2", "a b:1:2", "a:x:2", "a:1:2\n", "é:1:2", "a:1:"]
)
def test_bad_trace_is_refused_with_the_value(bad: str) -> None:
    with pytest.raises(TraceError, match="not <client>:<seq>:<sent_ns>"):
        decode_trace(bad)


def test_sequence_numbers_count_per_client_from_zero() -> None:
    ledger = Ledger(run_started_ns=0)
    assert [ledger.next_trace("a", 1).seq for _ in range(3)] == [0, 1, 2]
    assert ledger.next_trace("b", 1).seq == 0


def test_ingested_once_gives_latency_then_duplicate() -> None:
    ledger = Ledger(run_started_ns=100)
    trace = ledger.next_trace("a", 1_000)
    ledger.sent(trace, "telemetry")
    delivery = ledger.ingested(trace, 3_500_000)
    assert delivery is not None
    assert delivery.kind == "telemetry"
    assert delivery.latency_ns == 3_499_000
    assert delivery.latency_ms == pytest.approx(3.499)
    assert ledger.ingested(trace, 4_000_000) is None
    assert ledger.counts.ingested == 1
    assert ledger.counts.duplicates == 1
    assert ledger.pending() == 0


def test_gap_is_visible_and_becomes_a_loss_on_close() -> None:
    ledger = Ledger(run_started_ns=0)
    traces = [ledger.next_trace("a", 10 + n) for n in range(4)]
    for trace in traces:
        ledger.sent(trace, "telemetry" if trace.seq else "status")
    for seq in (0, 2):
        assert ledger.ingested(traces[seq], 100) is not None
    assert ledger.gaps("a") == [1]
    assert ledger.pending("a") == 2
    losses = ledger.close("a")
    assert losses == [Loss("a", 1, "telemetry"), Loss("a", 3, "telemetry")]
    assert ledger.counts.lost == 2
    # Arriving after being counted lost is "late", neither a delivery nor a duplicate.
    assert ledger.ingested(traces[3], 200) is None
    assert ledger.counts.late == 1
    assert ledger.counts.duplicates == 0


def test_other_clients_and_earlier_runs_are_foreign() -> None:
    ledger = Ledger(run_started_ns=1_000)
    ledger.register("mine")
    assert ledger.knows("mine")
    assert not ledger.knows("theirs")
    assert ledger.ingested(Trace("theirs", 0, 2_000), 3_000) is None
    # Same id as ours but sent before this run started: a previous run's entry.
    assert ledger.ingested(Trace("mine", 0, 500), 3_000) is None
    # A sequence number we never sent (beyond next_seq) is not ours either.
    assert ledger.ingested(Trace("mine", 5, 2_000), 3_000) is None
    assert ledger.counts.foreign == 3
    assert ledger.counts.duplicates == 0


def test_close_all_clients() -> None:
    ledger = Ledger(run_started_ns=0)
    for client in ("a", "b"):
        ledger.sent(ledger.next_trace(client, 1), "badge_event")
    assert {loss.client for loss in ledger.close()} == {"a", "b"}
    assert ledger.pending() == 0
