"""The Sentinel perf options from the environment: a typo is an error naming the choices."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

import pytest

from bench.perf import sentinel
from bench.perf.sentinel_fanout import Tally, completeness

PARTS = ["auth", "idle", "fanout", "failover"]


def test_no_parts_named_means_every_part(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(sentinel.PARTS_ENV, raising=False)
    assert sentinel._chosen_parts(PARTS) == set(PARTS)


def test_named_parts_narrow_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sentinel.PARTS_ENV, " auth , fanout ")
    assert sentinel._chosen_parts(PARTS) == {"auth", "fanout"}


def test_an_unknown_part_is_refused_with_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sentinel.PARTS_ENV, "auth,fanuot")
    with pytest.raises(ValueError, match=r"fanuot.*choose from"):
        sentinel._chosen_parts(PARTS)


@pytest.mark.parametrize(
    ("value", "quick", "want"), [("", False, 5000), ("", True, 100), ("1000", False, 1000)]
)
def test_the_fan_out_size(
    monkeypatch: pytest.MonkeyPatch, value: str, quick: bool, want: int
) -> None:
    monkeypatch.setenv(sentinel.SUBSCRIBERS_ENV, value)
    assert sentinel._subscribers(quick) == want


@pytest.mark.parametrize("value", ["0", "-5", "many"])
def test_a_bad_fan_out_size_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(sentinel.SUBSCRIBERS_ENV, value)
    with pytest.raises(ValueError, match="positive number"):
        sentinel._subscribers(False)


def _message(client: str, number: int, sent_at: float) -> Any:
    body = json.dumps({"client": client, "n": number, "sent_at": sent_at}).encode()
    return SimpleNamespace(payload=body)


def test_the_fan_out_tally_counts_distinct_alerts_and_flags_what_is_missing() -> None:
    tally = Tally()
    tally.receive("c1", _message("c1", 0, time.time()))
    tally.receive("c1", _message("c1", 0, time.time()))  # a QoS 1 redelivery
    tally.receive("c2", _message("c1", 1, time.time()))  # reached the wrong client
    assert len(tally.latencies) == 2
    assert (tally.duplicates, tally.foreign) == (1, 1)
    # The quantiles' note says when they cover less than was published — and nothing
    # delivered of nothing published is not "complete" either.
    assert completeness(2, 2) == "all 2 alerts delivered"
    assert completeness(2, 6000) == "INCOMPLETE: 2 of 6000 alerts delivered"
    assert completeness(0, 0).startswith("INCOMPLETE")
    assert sentinel.FANOUT_CAP_S > sentinel.FANOUT_RAMP_S
