"""Link-state rules of the federation mesh (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.federation.links import (
    LinkStatus,
    SiteStatus,
    heartbeat_age_s,
    link_id,
    link_status,
    propagation_latency_ms,
    site_status_for,
)

SEED = {"degraded_after_s": 45.0, "down_after_s": 120.0}


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (0.0, LinkStatus.HEALTHY),
        (-3.0, LinkStatus.HEALTHY),  # peer clock ahead: the heartbeat did arrive
        (44.999, LinkStatus.HEALTHY),
        (45.0, LinkStatus.DEGRADED),
        (119.9, LinkStatus.DEGRADED),
        (120.0, LinkStatus.DOWN),
        (10_000.0, LinkStatus.DOWN),
        (None, LinkStatus.DOWN),
    ],
)
def test_status_follows_the_seed_thresholds(age: float | None, expected: LinkStatus) -> None:
    assert link_status(age, **SEED) is expected


@given(st.floats(0, 1000), st.floats(0, 1000))
def test_status_never_improves_as_silence_grows(a: float, b: float) -> None:
    order = [LinkStatus.HEALTHY, LinkStatus.DEGRADED, LinkStatus.DOWN]
    young, old = sorted((a, b))
    assert order.index(link_status(young, **SEED)) <= order.index(link_status(old, **SEED))


@pytest.mark.parametrize(("degraded", "down"), [(0.0, 5.0), (10.0, 5.0), (-1.0, 3.0)])
def test_inconsistent_thresholds_are_refused(degraded: float, down: float) -> None:
    with pytest.raises(ValueError, match="0 < degraded_after_s <= down_after_s"):
        link_status(1.0, degraded_after_s=degraded, down_after_s=down)


def test_link_id_is_undirected_and_lexicographic() -> None:
    assert link_id("b", "a") == link_id("a", "b") == "link-a-b"
    assert link_id("site-2", "site-10") == "link-site-10-site-2"
    with pytest.raises(ValueError, match="two different sites"):
        link_id("a", "a")


def test_site_status_mirrors_its_link() -> None:
    assert site_status_for(LinkStatus.HEALTHY) is SiteStatus.ONLINE
    assert site_status_for(LinkStatus.DEGRADED) is SiteStatus.DEGRADED
    assert site_status_for(LinkStatus.DOWN) is SiteStatus.OFFLINE


def test_ages_and_latency() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert heartbeat_age_s(None, now) is None
    assert heartbeat_age_s(now - timedelta(seconds=2.5), now) == 2.5
    assert propagation_latency_ms(now - timedelta(milliseconds=7), now) == pytest.approx(7.0)
    assert propagation_latency_ms(now + timedelta(seconds=1), now) == 0.0  # skew clamped
