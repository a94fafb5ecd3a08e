"""The Sentinel's scenario kinds: file format, evaluation against hand-built timelines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.errors import BenchError
from bench.scenario.expectations import Verdict, describe, evaluate
from bench.scenario.loader import load_scenario
from bench.scenario.schema import parse_expectation
from bench.scenario.sentinel_steps import SentinelPublishAction
from bench.scenario.timeline import Clock, Event, EventKind, Timeline

SHIPPED = Path(__file__).parents[3] / "scenarios" / "sentinel"


def timeline(*events: Event) -> Timeline:
    line = Timeline(Clock(lambda: 0.0))
    for event in events:
        line.add(event)
    return line


def security(t: float, rule: str, client: str = "acme", **data: Any) -> Event:
    fields = {"stage": "auth", "rule": rule, "client": client, "severity": "high", **data}
    return Event(t, EventKind.SECURITY, "redis", "a", client, fields)


def delivery(t: float, client: str, body: str, topic: str | None = None) -> Event:
    fields = {"client": client, "topic": topic or f"clients/{client}/alerts", "body": body}
    return Event(t, EventKind.DELIVERY, "sentinel", None, client, fields)


def test_the_shipped_sentinel_scenarios_load() -> None:
    names = {load_scenario(path).scenario.name for path in sorted(SHIPPED.glob("*.yaml"))}
    assert names == {"sentinel fanout", "sentinel threats", "sentinel federated ioc"}
    assert all(load_scenario(p).scenario.sentinel for p in SHIPPED.glob("*.yaml"))


def test_sentinel_belongs_on_the_first_site(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: x\nsites:\n  a: {}\n  b: {sentinel: true}\nsteps:\n  - name: s\n    wait: 1s\n"
    )
    with pytest.raises(BenchError, match="belongs on the first site"):
        load_scenario(path)


def test_a_bad_sentinel_step_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: x\nsites: {a: {sentinel: true}}\nsteps:\n  - name: s\n"
        "    sentinel_client: {id: acme, attempts: 3}\n"
    )
    with pytest.raises(BenchError, match=r"s.yaml:5.*attempts"):
        load_scenario(path)


def test_publish_copies_are_distinct_alerts() -> None:
    action = SentinelPublishAction.model_validate({"client": "c", "json": {"title": "t"}})
    assert action.body(0) != action.body(1)
    assert action.body(3) == b'{"title":"t","seq":3}'


def test_one_aggregated_event_passes_and_many_fail_at_most() -> None:
    body = parse_expectation(
        {"security_event": {"rule": "stuffing", "client": "acme", "at_most": 1, "within": 10}}
    )
    one = timeline(security(2.0, "stuffing"), security(3.0, "other"))
    assert evaluate(body, one, 0.0, 5.0).verdict is Verdict.PENDING  # watches the window
    assert evaluate(body, one, 0.0, 10.5).verdict is Verdict.PASSED
    many = timeline(*(security(1.0 + i / 10, "stuffing") for i in range(30)))
    outcome = evaluate(body, many, 0.0, 10.5)
    assert outcome.verdict is Verdict.FAILED
    assert outcome.observed.startswith("30 matching")
    none = timeline(security(2.0, "other"))
    assert evaluate(body, none, 0.0, 10.5).verdict is Verdict.FAILED


def test_security_event_filters_on_severity_and_closing() -> None:
    body = parse_expectation(
        {"security_event": {"rule": "r", "min_severity": "critical", "closed": False}}
    )
    line = timeline(security(1.0, "r"), security(2.0, "r", severity="critical", closed=True))
    assert evaluate(body, line, 0.0, 6.0).verdict is Verdict.FAILED
    line.add(security(3.0, "r", severity="critical", closed=False))
    assert evaluate(body, line, 0.0, 6.0).verdict is Verdict.PASSED


def test_delivered_and_not_delivered_look_at_the_clients_own_topic() -> None:
    line = timeline(delivery(1.0, "east", "for-east-1"), delivery(2.0, "west", "for-west-1"))
    got = parse_expectation({"delivered": {"client": "east", "contains": "for-east"}})
    assert evaluate(got, line, 0.0, 1.5).verdict is Verdict.PASSED
    leak = parse_expectation({"not_delivered": {"client": "west", "contains": "for-east"}})
    assert evaluate(leak, line, 0.0, 4.0).verdict is Verdict.PASSED
    line.add(delivery(2.5, "west", "for-east-1"))
    outcome = evaluate(leak, line, 0.0, 4.0)
    assert outcome.verdict is Verdict.FAILED
    assert "west" in outcome.observed
    assert describe(got) == "an alert containing 'for-east' delivered to east within 5s"


def test_auth_expectation_counts_decisions_with_reason() -> None:
    body = parse_expectation(
        {"auth": {"client": "v", "result": "denied", "reason": "bad_password", "count": 2}}
    )
    denied = {"client": "v", "result": "denied", "reason": "bad_password"}
    line = timeline(Event(1.0, EventKind.AUTH, "redis", "a", "v", denied))
    assert evaluate(body, line, 0.0, 2.0).verdict is Verdict.PENDING
    line.add(Event(1.5, EventKind.AUTH, "redis", "a", "v", {**denied, "reason": "disabled"}))
    assert evaluate(body, line, 0.0, 6.0).verdict is Verdict.FAILED
    line.add(Event(1.7, EventKind.AUTH, "redis", "a", "v", denied))
    assert evaluate(body, line, 0.0, 6.0).verdict is Verdict.PASSED
