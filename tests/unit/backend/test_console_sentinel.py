"""The console's Sentinel panel: monitor answers and the counters hash in, panel data out
(pure), and the ``AURORA_SENTINEL_MONITORS`` setting."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from backend.console.sentinel import (
    RegionState,
    counters_from_hash,
    region_state,
    shard_connections,
    summary,
)
from backend.sentinel.reporting import COUNTER_FIELDS
from backend.settings import Settings, parse_monitors


def _accstatz(**conns: object) -> dict[str, object]:
    return {"account_statz": [{"acc": name, "conns": n} for name, n in conns.items()]}


def test_clients_are_the_shard_accounts_connections_without_the_services() -> None:
    # Clients live in the shard accounts; the record account (bridge, workers) and the
    # callout's account are not clients, whatever their connections.
    answer = _accstatz(CLIENTS_0=4, CLIENTS_5=3, SENTINEL=5, AUTH=2)
    state = region_state("us-east", answer, [{"num_connections": 1}, {"num_connections": 2}])
    assert state == RegionState("us-east", "up", clients=4, services=3)
    assert shard_connections(answer) == {0: 4, 5: 3}
    # Names that only look like a shard's are not one.
    assert shard_connections(_accstatz(CLIENTS_01=9, CLIENTS_=9, CLIENTS_x=9)) == {}


def test_a_node_whose_answer_has_no_count_is_down_with_the_reason() -> None:
    state = region_state("eu-west", _accstatz(CLIENTS_0="many"), [])
    assert state.status == "down"
    assert state.clients is None
    assert "conns" in state.reason
    assert region_state("eu-west", ["not", "a", "dict"], []).status == "down"
    assert "account_statz" in region_state("eu-west", {"total": 3}, []).reason
    bad_service = region_state("eu-west", _accstatz(CLIENTS_0=1), [{"num_connections": -1}])
    assert bad_service.status == "down"


def test_services_never_make_the_client_count_negative() -> None:
    # The answers are read a moment apart; a service may connect in between.
    state = region_state("ap-south", _accstatz(CLIENTS_2=0), [{"num_connections": 1}])
    assert state.clients == 0


def test_counters_missing_are_zero_and_garbage_is_unknown_not_a_guess() -> None:
    raw = {b"inspected": b"12", "delivered": "10", b"flagged": b"x1", b"other": b"5"}
    assert counters_from_hash(raw) == {
        "inspected": 12,
        "delivered": 10,
        "flagged": None,
        "quarantined": 0,
    }
    assert counters_from_hash({}) == dict.fromkeys(COUNTER_FIELDS, 0)


def test_the_summary_is_what_the_page_reads() -> None:
    regions = [RegionState("us-east", "up", 1, 2), RegionState("eu-west", "down", reason="x")]
    assert summary(regions, None, "Redis: refused") == {
        "regions": [
            {"region": "us-east", "status": "up", "clients": 1, "services": 2, "reason": ""},
            {"region": "eu-west", "status": "down", "clients": None, "services": None,
             "reason": "x"},
        ],
        "counters": None,
        "counters_note": "Redis: refused",
    }  # fmt: skip


def test_monitors_parse_from_the_environment_form() -> None:
    assert parse_monitors(" us-east=http://127.0.0.1:8222/ ,eu-west=https://h:1,") == {
        "us-east": "http://127.0.0.1:8222",
        "eu-west": "https://h:1",
    }
    assert parse_monitors("") == {}


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("us-east", "expected region=http"),
        ("US East=http://h:1", "expected region=http"),
        ("us-east=h:1", "must start with http"),
        ("us-east=http://a:1,us-east=http://b:2", "given twice"),
    ],
)
def test_bad_monitors_name_the_item_and_what_is_wrong(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_monitors(text)


def test_the_setting_reads_the_environment_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AURORA_SENTINEL_MONITORS", "us-east=http://127.0.0.1:1")
    assert Settings().sentinel_monitors == {"us-east": "http://127.0.0.1:1"}
    monkeypatch.setenv("AURORA_SENTINEL_MONITORS", "us-east=nope")
    with pytest.raises(ValidationError, match="AURORA_SENTINEL_MONITORS item 1"):
        Settings()
