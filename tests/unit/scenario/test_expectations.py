"""Expectations against hand-built timelines: pass, fail (with what was observed), pending."""

from typing import Any

import pytest

from bench.scenario.expectations import (
    Context,
    Verdict,
    deadline,
    describe,
    evaluate,
    pair_events,
)
from bench.scenario.schema import ExpectationItem, LatencyExpect, parse_expectation
from bench.scenario.timeline import Clock, Event, EventKind, Timeline


def timeline(*events: Event) -> Timeline:
    line = Timeline(Clock(lambda: 0.0))
    for event in events:
        line.add(event)
    return line


def ev(
    t: float,
    kind: EventKind,
    device: str | None = None,
    site: str = "a",
    source: str = "probe",
    **data: Any,
) -> Event:
    return Event(t, kind, source, site, device, data)


def expect(**raw: Any) -> ExpectationItem:
    return parse_expectation(raw)


def test_alert_within_bound_passes_with_latency() -> None:
    line = timeline(
        ev(0.5, EventKind.ALERT, "door-02", type="telemetry_anomaly", severity="medium"),
        ev(1.2, EventKind.ALERT, "door-02", type="access_denied", severity="high"),
    )
    outcome = evaluate(
        expect(alert={"type": "access_denied", "device": "door-02", "within": 2}), line, 1.0, 1.5
    )
    assert outcome.verdict is Verdict.PASSED
    assert outcome.latency_s == pytest.approx(0.2)


def test_alert_pending_before_the_bound_and_failed_after_with_what_was_seen() -> None:
    line = timeline(
        ev(1.1, EventKind.ALERT, "door-02", type="telemetry_anomaly", severity="medium")
    )
    e = expect(alert={"type": "access_denied", "within": "1s"})
    assert evaluate(e, line, 1.0, 1.5).verdict is Verdict.PENDING
    failed = evaluate(e, line, 1.0, 2.0)
    assert failed.verdict is Verdict.FAILED
    assert "access_denied" in failed.expected
    assert "telemetry_anomaly" in failed.observed
    assert failed.at == 2.0


def test_alert_after_the_bound_or_before_the_step_does_not_count() -> None:
    line = timeline(
        ev(0.9, EventKind.ALERT, type="c2_beacon", severity="critical"),
        ev(2.5, EventKind.ALERT, type="c2_beacon", severity="critical"),
    )
    outcome = evaluate(expect(alert={"type": "c2_beacon", "within": 1}), line, 1.0, 3.0)
    assert outcome.verdict is Verdict.FAILED
    assert outcome.observed == "no alert at all"


def test_alert_filters_site_origin_and_severity() -> None:
    federated = ev(
        1.3, EventKind.ALERT, site="a", type="c2_beacon", severity="critical", origin_site="b"
    )
    line = timeline(
        ev(1.1, EventKind.ALERT, site="b", type="c2_beacon", severity="critical"), federated
    )
    e = expect(
        alert={"type": "c2_beacon", "site": "a", "origin": "b", "min_severity": "high", "within": 1}
    )
    assert evaluate(e, line, 1.0, 1.4).evidence == (federated,)
    assert (
        evaluate(
            expect(alert={"site": "a", "severity": "low", "within": 1}), line, 1.0, 2.1
        ).verdict
        is Verdict.FAILED
    )
    # a local alert's origin is its own site
    assert (
        evaluate(expect(alert={"site": "b", "origin": "b", "within": 1}), line, 1.0, 1.2).verdict
        is Verdict.PASSED
    )


def test_alert_fields_must_be_forwarded_verbatim() -> None:
    sent = '{"device_id":"env-01","type":"sensor_unhealthy","severity":"critical"}'
    line = timeline(
        ev(1.1, EventKind.ALERT, "env-01", type="sensor_unhealthy", severity="critical",
           payload=sent.replace("critical", "high"), description="AHT21B timeout"),
    )  # fmt: skip
    verbatim = expect(alert={"device": "env-01", "data": {"payload": sent}, "within": 1})
    failed = evaluate(verbatim, line, 1.0, 2.0)
    assert failed.verdict is Verdict.FAILED
    assert "fields differ: payload: expected '" in failed.observed
    assert '"high"}\'' in failed.observed  # what the stream carried instead
    assert "payload=" in describe(verbatim)
    same = expect(alert={"data": {"description": "AHT21B timeout"}, "within": 1})
    assert evaluate(same, line, 1.0, 1.2).verdict is Verdict.PASSED


def test_alert_count() -> None:
    line = timeline(*(ev(1 + i / 10, EventKind.ALERT, type="x", severity="low") for i in range(3)))
    assert (
        evaluate(expect(alert={"type": "x", "count": 3, "within": 1}), line, 1.0, 1.3).verdict
        is Verdict.PASSED
    )
    assert (
        evaluate(expect(alert={"type": "x", "count": 4, "within": 1}), line, 1.0, 2.1).verdict
        is Verdict.FAILED
    )


def test_no_alert_fails_at_the_first_offender_and_passes_after_the_window() -> None:
    e = expect(no_alert={"type": "access_denied", "for": 2})
    quiet = timeline(ev(1.5, EventKind.ALERT, type="other", severity="low"))
    assert evaluate(e, quiet, 1.0, 2.0).verdict is Verdict.PENDING
    assert evaluate(e, quiet, 1.0, 3.0).verdict is Verdict.PASSED
    noisy = timeline(ev(1.5, EventKind.ALERT, "door-02", type="access_denied", severity="high"))
    failed = evaluate(e, noisy, 1.0, 1.6)
    assert failed.verdict is Verdict.FAILED
    assert failed.at == 1.5
    assert "access_denied" in failed.observed


def test_command_from_a_simulated_node_must_be_received_by_it() -> None:
    at_broker = ev(1.1, EventKind.COMMAND, "door-01", source="mqtt", verb="unlock")
    e = expect(command={"device": "door-01", "verb": "unlock", "within": 1})
    nodes = Context(node_devices=frozenset({"door-01"}))
    line = timeline(at_broker)
    assert evaluate(e, line, 1.0, 1.5).verdict is Verdict.PASSED  # real board: broker is enough
    failed = evaluate(e, line, 1.0, 2.5, nodes)
    assert failed.verdict is Verdict.FAILED
    assert "unlock via mqtt" in failed.observed
    line.add(ev(1.12, EventKind.COMMAND, "door-01", source="node", verb="unlock"))
    assert evaluate(e, line, 1.0, 2.5, nodes).verdict is Verdict.PASSED


def test_command_with_the_wrong_verb_fails() -> None:
    line = timeline(ev(1.1, EventKind.COMMAND, "door-01", source="node", verb="lock"))
    outcome = evaluate(
        expect(command={"device": "door-01", "verb": "unlock", "within": 1}), line, 1.0, 2.0
    )
    assert outcome.verdict is Verdict.FAILED
    assert "lock via node" in outcome.observed


def test_no_command() -> None:
    e = expect(no_command={"device": "door-01", "verb": "unlock", "for": 1})
    assert (
        evaluate(e, timeline(ev(1.5, EventKind.COMMAND, "door-01", verb="lock")), 1.0, 2.0).verdict
        is Verdict.PASSED
    )
    assert (
        evaluate(
            e, timeline(ev(1.5, EventKind.COMMAND, "door-01", verb="unlock")), 1.0, 1.6
        ).verdict
        is Verdict.FAILED
    )


def test_lock_state_in_effect_at_the_start_counts() -> None:
    line = timeline(
        ev(0.0, EventKind.LOCK, "door-01", source="node", state="locked"),
        ev(0.5, EventKind.LOCK, "door-01", source="node", state="lockdown"),
    )
    assert (
        evaluate(expect(lock={"device": "door-01", "state": "lockdown"}), line, 1.0, 1.0).latency_s
        == 0
    )
    failed = evaluate(
        expect(lock={"device": "door-01", "state": "unlocked", "within": 1}), line, 1.0, 2.0
    )
    assert failed.verdict is Verdict.FAILED
    assert "lockdown" in failed.observed
    # an earlier state that no longer holds does not count
    assert (
        evaluate(
            expect(lock={"device": "door-01", "state": "locked", "within": 1}), line, 1.0, 2.0
        ).verdict
        is Verdict.FAILED
    )


def test_a_state_that_must_hold_is_not_passed_by_being_reached() -> None:
    """`for:` — a door already in lockdown must stay there; reaching it is not enough."""
    hold = expect(lock={"device": "door-01", "state": "lockdown", "for": "1s"})
    steady = timeline(ev(0.5, EventKind.LOCK, "door-01", source="node", state="lockdown"))
    assert evaluate(hold, steady, 1.0, 1.5).verdict is Verdict.PENDING
    passed = evaluate(hold, steady, 1.0, 2.0)
    assert passed.verdict is Verdict.PASSED
    assert passed.at == 2.0 and "held 1s" in passed.observed
    assert deadline(hold, 1.0) == 1.0 + 2.0 + 1.0  # within (default 2s) then for
    # it opens for a moment and locks down again: still a failure, at the change
    flapping = timeline(
        ev(0.5, EventKind.LOCK, "door-01", source="node", state="lockdown"),
        ev(1.3, EventKind.LOCK, "door-01", source="node", state="unlocked"),
        ev(1.4, EventKind.LOCK, "door-01", source="node", state="lockdown"),
    )
    failed = evaluate(hold, flapping, 1.0, 3.0)
    assert failed.verdict is Verdict.FAILED
    assert failed.at == 1.3
    assert "then [a]lock door-01 unlocked at 1.300s (held 300ms of 1s)" in failed.observed
    # without `for`, the same timeline passes at once: that is what `for` adds
    reached = expect(lock={"device": "door-01", "state": "lockdown"})
    assert evaluate(reached, flapping, 1.0, 1.0).verdict is Verdict.PASSED
    assert "then held for 1s" in describe(hold)


def test_a_device_state_must_hold_too() -> None:
    hold = expect(device={"device": "env-01", "trust": "trusted", "for": 1, "within": 1})
    line = timeline(
        ev(1.2, EventKind.DEVICE, "env-01", source="api", trust_status="trusted", risk_score=0),
        ev(1.5, EventKind.DEVICE, "env-01", source="api", trust_status="trusted", risk_score=5),
        ev(1.9, EventKind.DEVICE, "env-01", source="api", trust_status="drift_detected"),
    )
    failed = evaluate(hold, line, 1.0, 3.0)
    assert failed.verdict is Verdict.FAILED and failed.at == 1.9
    # a change of another field (risk) is not a change away from the state
    assert evaluate(hold, line, 1.0, 1.8).verdict is Verdict.PENDING


def test_last_seen_must_move_forward_after_the_step_began() -> None:
    t0, t1 = "2026-12-01T10:00:00+00:00", "2026-12-01T10:00:01.500000+00:00"
    line = timeline(
        ev(0.5, EventKind.DEVICE, "env-01", source="api", trust_status="trusted", last_seen=t0),
        ev(1.6, EventKind.DEVICE, "env-01", source="api", trust_status="trusted", last_seen=t1),
    )
    fresh = expect(device={"device": "env-01", "seen_since_step": True, "within": 1})
    assert evaluate(fresh, line, 1.0, 1.5).verdict is Verdict.PENDING  # t0 is old news
    passed = evaluate(fresh, line, 1.0, 1.7)
    assert passed.verdict is Verdict.PASSED and passed.at == 1.6
    # a backend that stops refreshing it: the same last_seen again is not "seen"
    stale = timeline(
        ev(0.5, EventKind.DEVICE, "env-01", source="api", trust_status="trusted", last_seen=t0),
        ev(1.6, EventKind.DEVICE, "env-01", source="api", trust_status="drift", last_seen=t0),
    )
    assert evaluate(fresh, stale, 1.0, 2.0).verdict is Verdict.FAILED
    assert "last_seen=refreshed" in describe(fresh)


def test_device_state_trust_and_risk() -> None:
    line = timeline(
        ev(0.2, EventKind.DEVICE, "env-01", trust_status="trusted", risk_score=0.0),
        ev(1.4, EventKind.DEVICE, "env-01", trust_status="drift_detected", risk_score=30.0),
    )
    drift = expect(
        device={"device": "env-01", "trust": "drift_detected", "risk_min": 25, "within": 1}
    )
    passed = evaluate(drift, line, 1.0, 1.5)
    assert passed.verdict is Verdict.PASSED
    assert passed.latency_s == pytest.approx(0.4)
    assert evaluate(drift, line, 0.0, 1.0).verdict is Verdict.FAILED
    unknown = evaluate(expect(device={"device": "env-99", "within": 1}), line, 1.0, 2.0)
    assert unknown.observed == "never observed"
    absent = expect(device={"device": "env-99", "registered": False, "within": 1})
    assert evaluate(absent, line, 1.0, 2.0).verdict is Verdict.PASSED
    assert (
        evaluate(
            expect(device={"device": "env-01", "registered": False, "within": 1}), line, 1.0, 2.0
        ).verdict
        is Verdict.FAILED
    )


def test_audit_with_data_fields() -> None:
    line = timeline(
        ev(
            1.1,
            EventKind.AUDIT,
            type="rejected_message",
            data={"reason": "not_json", "device_id": "env-01"},
        ),
        ev(
            1.2,
            EventKind.AUDIT,
            type="rejected_message",
            data={"reason": "oversize", "device_id": "env-01"},
        ),
    )
    e = expect(
        audit={
            "type": "rejected_message",
            "device": "env-01",
            "data": {"reason": "oversize"},
            "within": 1,
        }
    )
    assert evaluate(e, line, 1.0, 1.3).at == 1.2
    e2 = expect(
        audit={"type": "rejected_message", "data": {"reason": "bad_device_id"}, "within": 1}
    )
    failed = evaluate(e2, line, 1.0, 2.0)
    assert failed.verdict is Verdict.FAILED
    assert "2 other audit entry" in failed.observed


def test_link_status() -> None:
    line = timeline(
        ev(0.5, EventKind.LINK, site="a", peer="b", status="healthy"),
        ev(3.0, EventKind.LINK, site="a", peer="b", status="degraded"),
    )
    e = expect(link={"site": "a", "peer": "b", "status": "degraded", "within": 5})
    assert evaluate(e, line, 1.0, 3.1).latency_s == pytest.approx(2.0)
    assert (
        evaluate(
            expect(link={"site": "b", "peer": "a", "status": "healthy", "within": 1}),
            line,
            1.0,
            2.0,
        ).verdict
        is Verdict.FAILED
    )


def _swipes(delays: list[float]) -> Timeline:
    events = []
    for index, delay in enumerate(delays):
        t = float(index)
        events.append(ev(t, EventKind.MQTT, "door-01", message="badge_event"))
        events.append(ev(t + delay, EventKind.COMMAND, "door-01", source="node", verb="unlock"))
    return timeline(*events)


def test_latency_p99_over_pairs() -> None:
    body = {"from": {"event": "badge"}, "to": {"event": "command", "verb": "unlock"}}
    line = _swipes([0.010] * 99 + [0.200])
    ok = evaluate(expect(latency={**body, "p50": "20ms", "min_pairs": 100}), line, 0.0, 200.0)
    assert ok.verdict is Verdict.PASSED
    assert ok.figures["pairs"] == 100
    assert ok.figures["p99"] == pytest.approx(0.010)
    bad = evaluate(expect(latency={**body, "max": "50ms"}), line, 0.0, 200.0)
    assert bad.verdict is Verdict.FAILED
    assert "max 200ms > 50ms" in bad.observed
    too_few = evaluate(expect(latency={**body, "p99": 1, "min_pairs": 101}), line, 0.0, 200.0)
    assert "only 100 pair(s)" in too_few.observed


def test_pairing_by_device_and_unanswered_events() -> None:
    body = LatencyExpect.model_validate(
        {"from": {"event": "badge"}, "to": {"event": "command"}, "max": 1}
    )
    events = [
        ev(0.0, EventKind.MQTT, "door-01", message="badge_event"),
        ev(0.1, EventKind.MQTT, "door-02", message="badge_event"),
        ev(0.3, EventKind.COMMAND, "door-02", verb="unlock"),
    ]
    pairs, unpaired = pair_events(body, events)
    assert [(a.device, b.t) for a, b in pairs] == [("door-02", 0.3)]
    assert [e.device for e in unpaired] == ["door-01"]


def test_descriptions_and_deadlines() -> None:
    e = expect(alert={"type": "access_denied", "device": "door-02", "within": "500ms"})
    assert describe(e) == "an alert type=access_denied device=door-02 at any site within 500ms"
    assert deadline(e, 2.0) == 2.5
    assert deadline(expect(no_alert={"for": 3}), 1.0) == 4.0
    assert (
        describe(expect(no_command={"device": "door-01", "verb": "unlock"}))
        == "no `unlock` command to door-01 for 1s"
    )


def test_metric_increase_against_the_baseline_before_the_step() -> None:
    name = "aurora_ingest_rejected_messages_total"

    def sample(t: float, v: float) -> Event:
        return ev(
            t, EventKind.METRIC, source="runner", name=name, labels={"reason": "oversize"}, value=v
        )

    e = expect(metric={"name": name, "labels": {"reason": "oversize"}, "increase": 2, "within": 1})
    line = timeline(sample(0.9, 3.0), sample(1.1, 4.0), sample(1.3, 5.0))
    passed = evaluate(e, line, 1.0, 1.4)
    assert passed.verdict is Verdict.PASSED
    assert passed.observed == "3 -> 5.0"
    assert passed.at == 1.3
    assert (
        evaluate(e, timeline(sample(0.9, 3.0), sample(1.1, 4.0)), 1.0, 1.5).verdict
        is Verdict.PENDING
    )
    failed = evaluate(e, timeline(sample(0.9, 3.0), sample(1.1, 4.0)), 1.0, 2.1)
    assert failed.verdict is Verdict.FAILED
    assert failed.observed == "3 -> 4.0 (+1)"
    never = evaluate(e, timeline(), 1.0, 2.1)
    assert never.observed == "the counter was never read"


def test_metric_sums_match_label_subsets() -> None:
    from bench.scenario.runner import metric_sums
    from bench.scenario.schema import MetricExpect

    text = (
        "# TYPE aurora_ingest_rejected_messages counter\n"
        'aurora_ingest_rejected_messages_total{reason="oversize"} 2.0\n'
        'aurora_ingest_rejected_messages_total{reason="not_json"} 3.0\n'
    )
    bodies = [
        MetricExpect(name="aurora_ingest_rejected_messages_total", labels={"reason": "oversize"}),
        MetricExpect(name="aurora_ingest_rejected_messages_total"),
        MetricExpect(name="aurora_missing_total"),
    ]
    assert metric_sums(text, bodies) == [2.0, 5.0, 0.0]


def test_alert_text_and_scenario_scope() -> None:
    early = ev(
        0.5,
        EventKind.ALERT,
        "fw-01",
        type="attestation_failed",
        severity="critical",
        description="replayed nonce: already answered",
    )
    line = timeline(early)
    replay = expect(
        alert={
            "type": "attestation_failed",
            "contains": "REPLAYED",
            "scope": "scenario",
            "within": 1,
        }
    )
    assert evaluate(replay, line, 1.0, 1.0).verdict is Verdict.PASSED
    assert evaluate(replay, line, 1.0, 1.0).latency_s == 0.0
    step_only = expect(alert={"type": "attestation_failed", "within": 1})
    assert evaluate(step_only, line, 1.0, 2.0).verdict is Verdict.FAILED
    wrong_text = expect(alert={"contains": "expired", "scope": "scenario", "within": 1})
    assert evaluate(wrong_text, line, 1.0, 2.0).verdict is Verdict.FAILED
