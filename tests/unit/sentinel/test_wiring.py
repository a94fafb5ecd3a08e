"""The pure parts of the wired pipeline: partitions, quarantine headers, event and alert
shapes, audit entries, the flood guard, and the worker's hooks (fake JetStream)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backend.contract import Severity
from backend.sentinel.__main__ import parse_args
from backend.sentinel.errors import SentinelError
from backend.sentinel.feeds import auth_event
from backend.sentinel.inspection import AlertMessage, SecurityEvent, Stage, parse_rules
from backend.sentinel.inspection.flood import FloodGuard
from backend.sentinel.inspection.rules import Limits
from backend.sentinel.naming import client_of_ingress
from backend.sentinel.partitions import (
    PARTITIONS,
    owned,
    partition_mapping,
    partition_queue,
    partition_subject,
)
from backend.sentinel.quarantine import MAX_DETAIL_CHARS, quarantine_headers, read_entry
from backend.sentinel.reporting import (
    COUNTER_FIELDS,
    alert_body,
    counter_increments,
    event_data,
)
from backend.sentinel.stages import Action, Finding, InboundMessage, Verdict
from backend.sentinel.worker import IngressWorker, Judged
from tests.unit.sentinel.test_worker import FakeJetStream, FakeMsg, FakeNats

# -- partitions ---------------------------------------------------------------------------


def test_workers_own_disjoint_partitions_that_cover_all() -> None:
    for workers in (1, 2, 3, 5, 16):
        shares = [owned(i, workers) for i in range(workers)]
        flat = sorted(p for share in shares for p in share)
        assert flat == list(range(PARTITIONS)), workers
        assert all(shares), workers  # every worker owns at least one


@pytest.mark.parametrize(("index", "workers"), [(2, 2), (-1, 2), (0, 0), (0, PARTITIONS + 1)])
def test_impossible_layouts_are_refused_with_the_reason(index: int, workers: int) -> None:
    with pytest.raises(SentinelError, match="must be"):
        owned(index, workers)


def test_the_mapping_puts_each_client_token_into_a_partition_subject() -> None:
    source, destination = partition_mapping(16)
    assert source == "sentinel.ingress.clients.*.alerts"
    assert destination == "sentinel.part.{{partition(16,1)}}.clients.{{wildcard(1)}}.alerts"
    assert partition_subject(3) == "sentinel.part.3.clients.*.alerts"
    assert partition_queue(3) != partition_queue(4)
    assert client_of_ingress("sentinel.part.3.clients.c-1.alerts") == "c-1"
    for bad in ("sentinel.part.x.clients.c.alerts", "sentinel.part.3.clients.c.d.alerts"):
        with pytest.raises(SentinelError):
            client_of_ingress(bad)


# -- quarantine ---------------------------------------------------------------------------


def test_quarantine_headers_carry_bounded_findings_and_read_back() -> None:
    findings = tuple(Finding("pattern", f"r{i}", "high", "d" * 1000) for i in range(30))
    headers = quarantine_headers("c1", "c1-abc", findings, 1700000000.5)
    assert headers["Nats-Msg-Id"] == "c1-abc"
    stored = json.loads(headers["Sentinel-Findings"])
    assert len(stored) == 20
    assert len(stored[0]["detail"]) == MAX_DETAIL_CHARS
    entry = read_entry(7, headers, b"\xffbody")
    assert (entry.seq, entry.client_id, entry.received_at) == (7, "c1", 1700000000.5)
    assert entry.as_json()["rules"][:2] == ["r0", "r1"]
    assert entry.preview.endswith("body")


def test_a_quarantined_entry_with_broken_headers_still_reads() -> None:
    entry = read_entry(1, {"Sentinel-Findings": "{not json", "Sentinel-Received-At": "x"}, b"")
    assert entry.findings == [] and entry.received_at is None and entry.client_id == "?"


# -- events, alerts, counters --------------------------------------------------------------


def _event(*, closed: bool = False) -> SecurityEvent:
    return SecurityEvent(
        stage=Stage.AUTH,
        rule="credential-stuffing-client",
        client_id="c1",
        severity=Severity.HIGH,
        first_at_s=1700000000.0,
        last_at_s=1700000042.0,
        count=37,
        detail="37 failed logins",
        closed=closed,
        samples=("a",),
    )


def test_an_event_has_the_fields_the_console_shows() -> None:
    data = event_data(_event(), "w1")
    assert {"severity", "stage", "rule", "client_id", "count", "at", "last_at"} <= data.keys()
    assert data["at"] == data["first_at"] == "2023-11-14T22:13:20.000+00:00"
    assert event_data(_event(closed=True), "w1")["at"] == data["last_at"]


def test_an_event_becomes_a_valid_alert_body() -> None:
    from backend.api.alerts import AlertBody

    body = AlertBody.model_validate(alert_body(_event(), "w1"))
    assert body.type == "sentinel.credential-stuffing-client"
    assert body.severity is Severity.HIGH
    assert body.details["client_id"] == "c1"


def test_counters_are_the_consoles_four_fields_only() -> None:
    assert COUNTER_FIELDS == ("inspected", "delivered", "flagged", "quarantined")
    assert counter_increments({"inspected": 3, "flagged": 0}) == {"inspected": 3}
    with pytest.raises(ValueError, match="not a Sentinel counter"):
        counter_increments({"dropped": 1})


# -- the callout audit as auth events ------------------------------------------------------


def test_an_audit_entry_becomes_an_auth_event_with_region_and_source() -> None:
    fields = {
        "client_id": "c1",
        "remote": "10.0.0.7",
        "result": "denied",
        "reason": "bad_password",
        "server": "sentinel-eu-west",
    }
    event = auth_event("1700000000123-0", fields)
    assert event is not None
    assert (event.region, event.source, event.allowed, event.at_s) == (
        "eu-west",
        "10.0.0.7",
        False,
        1700000000.123,
    )
    assert auth_event("bad-id", fields) is None
    assert auth_event("1-0", {**fields, "result": "maybe"}) is None


# -- flood guard ----------------------------------------------------------------------------


def _alert(client: str, at: float) -> AlertMessage:
    return AlertMessage(client, f"clients/{client}/alerts", b"{}", "pub", at)


def test_a_flooding_client_is_cut_to_its_rate_and_others_are_not() -> None:
    guard = FloodGuard(Limits(client_rate_per_s=10, client_burst=20))
    flood = [guard.admit(_alert("noisy", 100.0 + i / 1000)) for i in range(200)]
    admitted = sum(1 for f in flood if f is None)
    assert 20 <= admitted <= 21  # the burst, plus what 0.2 s at 10/s refilled
    assert {f.rule for f in flood if f is not None} == {"client-flood"}
    assert guard.admit(_alert("quiet", 100.2)) is None
    assert guard.admit(_alert("noisy", 110.0)) is None  # refilled after a pause


def test_the_rules_file_takes_the_flood_limits() -> None:
    rules = parse_rules("limits: {client_rate_per_s: 5, client_burst: 10}\n")
    assert rules.limits.client_rate_per_s == 5
    with pytest.raises(Exception, match=r"<rules>:1: limits.client_rate_per_s"):
        parse_rules("limits: {client_rate_per_s: 0}\n")


# -- the worker's hooks ---------------------------------------------------------------------


class Flagger:
    name = "flagger"

    def inspect(self, message: InboundMessage) -> Verdict:
        if b"odd" in message.payload:
            return Verdict(Action.FLAG, (Finding(self.name, "odd", "low"),))
        return Verdict()


async def test_the_worker_prepares_admits_and_reports_each_batch() -> None:
    js = FakeJetStream()
    prepared: list[list[str]] = []
    reported: list[Judged] = []

    async def prepare(ids: Any) -> None:
        prepared.append(list(ids))

    async def report(judged: Any) -> None:
        reported.extend(judged)

    worker = IngressWorker(
        FakeNats(js),  # type: ignore[arg-type]
        [Flagger()],
        feeds=[FakeNats(js)],  # type: ignore[list-item]
        prepare=prepare,
        admit=lambda m: "client_flood" if m.client_id == "noisy" else None,
        report=report,
    )
    batch = [
        FakeMsg("sentinel.part.1.clients.c1.alerts", b"an odd one"),
        FakeMsg("sentinel.part.2.clients.noisy.alerts", b"x"),
        FakeMsg("sentinel.part.1.clients.c1.alerts", b"plain"),
    ]
    await worker.handle_batch(batch)  # type: ignore[arg-type]
    assert prepared == [["c1", "noisy", "c1"]]
    assert [(j.message.payload, j.verdict.action, j.stored) for j in reported] == [
        (b"an odd one", Action.FLAG, True),
        (b"plain", Action.DELIVER, True),
    ]
    # Each delivered alert goes to the record and to the QoS 1 feed; the flood's does not.
    assert sorted(s for s, p, _i in js.published if p == b"an odd one") == [
        "$MQTT.msgs.clients.c1.alerts",
        "clients.c1.alerts",
    ]
    assert sorted(p for _s, p, _i in js.published) == [b"an odd one"] * 2 + [b"plain"] * 2
    text = _metrics_text(worker)
    assert 'sentinel_worker_dropped_total{reason="client_flood"} 1.0' in text


def _metrics_text(worker: IngressWorker) -> str:
    from prometheus_client import generate_latest

    return generate_latest(worker.metrics.registry).decode()


def test_the_worker_command_takes_a_rules_file() -> None:
    args = parse_args(["worker", "--rules", "/tmp/r.yaml"])
    assert (args.role, args.rules) == ("worker", Path("/tmp/r.yaml"))
    assert parse_args(["callout"]).rules is None
    with pytest.raises(SystemExit):
        parse_args(["bogus"])


def test_a_broken_rules_file_stops_the_worker_with_file_and_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nsignatures:\n  - id: bad\n    regex: '(a)\\1'\n")
    result = subprocess.run(
        [sys.executable, "-m", "backend.sentinel", "worker", "--rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert f"{rules}:3: signatures.0" in result.stderr
    assert "RE2" in result.stderr


async def test_only_opening_events_at_the_alert_severity_become_alerts() -> None:
    from dataclasses import replace

    from backend.sentinel.reporting import AlertRaiser, Reporter

    raiser = AlertRaiser("http://127.0.0.1:9", "token")
    reporter = Reporter(None, worker="w1", alerts=raiser)  # default: high and above
    high = _event()
    medium = replace(high, severity=Severity.MEDIUM)
    reporter.add([high, medium, _event(closed=True)], {"inspected": 3})
    assert raiser.pending == 1
    assert await reporter.flush()  # no Redis: nothing to write, nothing lost
