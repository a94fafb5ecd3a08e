"""Gossip rules (pure): which heartbeats count, which link transitions they cause."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backend.federation.gossip import (
    HeartbeatVerdict,
    LinkChanged,
    LinkSnapshot,
    LinkThresholds,
    change_on_heartbeat,
    echo_subject,
    judge_heartbeat,
    link_latency_ms,
    stale_link_changes,
    status_on_heartbeat,
)
from backend.federation.links import LinkStatus
from backend.federation.messages import HealthPayload

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
SEED = LinkThresholds(degraded_after_s=45.0, down_after_s=120.0)


def _link(peer: str, status: LinkStatus, age_s: float | None) -> LinkSnapshot:
    first, second = sorted(("a", peer))
    return LinkSnapshot(
        link_id=f"link-{first}-{second}",
        site_a=first,
        site_b=second,
        status=status.value,
        last_heartbeat=None if age_s is None else NOW - timedelta(seconds=age_s),
    )


def test_heartbeats_are_judged_by_origin_and_subject() -> None:
    peer = HealthPayload(site_id="b", sent_at=NOW)
    assert judge_heartbeat("a", "aurora.federation.health.b", peer) is HeartbeatVerdict.ACCEPT
    own = HealthPayload(site_id="a", sent_at=NOW)
    assert judge_heartbeat("a", "aurora.federation.health.a", own) is HeartbeatVerdict.OWN
    # site c speaking for b, or b on c's subject: not recorded
    assert judge_heartbeat("a", "aurora.federation.health.c", peer) is HeartbeatVerdict.MISROUTED


def test_a_heartbeat_makes_the_link_healthy_and_reports_only_a_change() -> None:
    status = status_on_heartbeat(SEED)
    assert status is LinkStatus.HEALTHY
    assert change_on_heartbeat("link-a-b", "b", "healthy", status, NOW) is None
    for previous in (None, "degraded", "down"):
        assert change_on_heartbeat("link-a-b", "b", previous, status, NOW) == LinkChanged(
            "link-a-b", "b", LinkStatus.HEALTHY, NOW
        )


def test_silence_demotes_links_step_by_step() -> None:
    links = [
        _link("b", LinkStatus.HEALTHY, 10.0),  # fresh: unchanged
        _link("c", LinkStatus.HEALTHY, 50.0),  # -> degraded
        _link("d", LinkStatus.DEGRADED, 130.0),  # -> down
        _link("e", LinkStatus.DOWN, None),  # never heard, already down: unchanged
        _link("0", LinkStatus.HEALTHY, 500.0),  # the peer sorts first: still named right
    ]
    changes = stale_link_changes("a", links, NOW, SEED)
    assert [(c.peer_id, c.status) for c in changes] == [
        ("c", LinkStatus.DEGRADED),
        ("d", LinkStatus.DOWN),
        ("0", LinkStatus.DOWN),
    ]
    assert all(c.at == NOW for c in changes)


def test_a_link_change_becomes_a_unique_audit_event() -> None:
    change = LinkChanged("link-a-b", "b", LinkStatus.DOWN, NOW)
    audit = change.audit("a")
    assert audit.origin_site == "a"
    assert audit.type == "link_status_changed"
    assert audit.data == {"link_id": "link-a-b", "peer": "b", "status": "down"}
    later = LinkChanged("link-a-b", "b", LinkStatus.DOWN, NOW + timedelta(seconds=1))
    assert later.audit("a").msg_id != audit.msg_id  # a second outage is a second event


def test_the_link_latency_is_half_the_echo_round_trip_once_one_was_timed() -> None:
    # A peer clock 3 s ahead makes the gossip age useless; the echo is on one clock.
    assert link_latency_ms(gossip_age_ms=0.0, echo_rtt_ms=None) == 0.0
    assert link_latency_ms(gossip_age_ms=3_000.0, echo_rtt_ms=None) == 3_000.0
    assert link_latency_ms(gossip_age_ms=3_000.0, echo_rtt_ms=101.5) == pytest.approx(50.75)


def test_each_site_answers_echoes_on_its_own_subject() -> None:
    assert echo_subject("a") == "aurora.federation.echo.a"
    assert echo_subject("a") != echo_subject("b")
