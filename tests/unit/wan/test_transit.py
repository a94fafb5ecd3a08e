"""The mesh transit the WAN figure reads from a stored peer alert's federation stamps."""

from __future__ import annotations

import pytest

from bench.perf.federation import transit_ms


def test_transit_is_received_minus_federated_in_milliseconds() -> None:
    alert = {
        "details": {
            "federation": {
                "federated_at": "2026-12-01T21:00:00.005Z",
                "received_at": "2026-12-01T21:00:00.058Z",
            }
        }
    }
    assert transit_ms(alert) == pytest.approx(53.0)


@pytest.mark.parametrize(
    "alert",
    [
        {},
        {"details": None},
        {"details": {"federation": {"federated_at": "2026-12-01T21:00:00Z"}}},
        {"details": {"federation": {"federated_at": "soon", "received_at": "later"}}},
    ],
)
def test_an_unstamped_alert_has_no_transit(alert: dict[str, object]) -> None:
    assert transit_ms(alert) is None
