"""Run checks and errors by cause: a load run that measured nothing never passes."""

from __future__ import annotations

import errno

from bench.load.assertions import parse_target
from bench.load.problems import Problems, merged, reason_of
from bench.load.summary import LoadCounters, LoadSummary
from bench.load.verdict import judge


def _by_name(planned: int, counters: LoadCounters, problems: Problems | None = None) -> dict:
    rows = problems.rows() if problems else []
    return {check.name: check for check in judge(planned, counters, rows)}


def test_a_healthy_run_passes_every_check() -> None:
    checks = _by_name(3, LoadCounters(devices=3, connected=3, sent=30, ingested=30))
    assert all(check.passed for check in checks.values()), checks


def test_nothing_connected_fails_with_the_first_error_per_reason() -> None:
    problems = Problems()
    for n in range(3):
        problems.record(
            "connect",
            ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
            f"load-esp32s3-0000{n}: connect failed: [Errno 111] Connection refused",
        )
    checks = _by_name(3, LoadCounters(devices=3, connect_failures=3), problems)
    assert not checks["devices connected"].passed
    assert checks["devices connected"].message == (
        "0/3 devices connected: connect ECONNREFUSED x3 "
        "(first: load-esp32s3-00000: connect failed: [Errno 111] Connection refused)"
    )
    assert not checks["messages sent"].passed
    assert "no device connected" in checks["messages sent"].message


def test_fewer_connected_than_asked_fails_and_counts_the_never_started() -> None:
    checks = _by_name(10, LoadCounters(devices=8, connected=8, sent=80, ingested=80))
    assert not checks["devices connected"].passed
    assert "8/10 devices connected (2 never started" in checks["devices connected"].message
    assert checks["messages sent"].passed


def test_sent_but_never_ingested_fails() -> None:
    checks = _by_name(2, LoadCounters(devices=2, connected=2, sent=20, lost=20))
    assert not checks["messages ingested"].passed


def test_a_dropped_connection_or_refused_publish_fails() -> None:
    problems = Problems()
    problems.record("disconnect", "Unspecified error", "load-1: broker closed the connection")
    counters = LoadCounters(devices=2, connected=2, sent=5, ingested=5)
    checks = _by_name(2, counters, problems)
    assert not checks["no broker errors"].passed
    assert "disconnect Unspecified error x1" in checks["no broker errors"].message
    assert _by_name(2, counters)["no broker errors"].passed


def test_a_dead_worker_or_fatal_error_fails() -> None:
    problems = Problems()
    problems.record("worker", "stopped answering", "worker w1 stopped answering", fatal=True)
    checks = _by_name(2, LoadCounters(devices=2, connected=2, sent=5, ingested=5), problems)
    assert not checks["workers healthy"].passed
    assert "worker w1 stopped answering" in checks["workers healthy"].message


def test_a_watcher_that_could_not_read_redis_fails_the_run() -> None:
    problems = Problems()
    problems.record("redis", ConnectionError("Connection reset"), "reading the streams failed")
    counters = LoadCounters(devices=2, connected=2, sent=5, ingested=4, lost=1)
    check = _by_name(2, counters, problems)["workers healthy"]
    assert not check.passed
    assert "reading the streams failed" in check.message


def test_problems_merge_across_workers_keeping_the_first_message() -> None:
    one, two = Problems(), Problems()
    one.record("connect", "timeout", "dev-1: timeout")
    two.record("connect", "timeout", "dev-2: timeout")
    two.record("redis", "down", "redis down", fatal=True)
    rows = merged(one.rows(), two.rows())
    assert [(row.cause, row.count, row.first, row.fatal) for row in rows] == [
        ("connect", 2, "dev-1: timeout", False),
        ("redis", 1, "redis down", True),
    ]
    assert reason_of(OSError(errno.ETIMEDOUT, "x")) == "ETIMEDOUT"
    assert reason_of(RuntimeError()) == "RuntimeError"

    class ReasonCode:  # paho hands CONNACK / DISCONNECT reasons over as objects
        def __str__(self) -> str:
            return "Not authorized"

    assert reason_of(ReasonCode()) == "Not authorized"


def test_a_loss_target_needs_a_message_sent() -> None:
    nothing = LoadSummary(duration_s=1.0, counters=LoadCounters(), stages=[])
    result = parse_target("loss==0").check(nothing)
    assert not result.passed
    assert "no message was sent" in result.message
    assert not parse_target("loss_pct<1%").check(nothing).passed
    sent = LoadSummary(duration_s=1.0, counters=LoadCounters(sent=3, ingested=3), stages=[])
    assert parse_target("loss==0").check(sent).passed
