"""The emulated WAN's rules: parsing ``--wan`` and the per-direction delay line. Pure."""

from __future__ import annotations

import random

import pytest

from bench.errors import BenchError
from bench.site_options import BenchOptions
from bench.wan.conditions import DelayLine, LinkConditions, WanSpecError, parse_conditions
from bench.wan.topology import AddressPlan


def test_the_issue_example_parses_to_one_way_delay_jitter_and_loss() -> None:
    conditions = parse_conditions("delay=50ms jitter=10ms loss=1%")
    assert conditions == LinkConditions(delay_ms=50.0, jitter_ms=10.0, loss=0.01)
    assert parse_conditions(conditions.describe()) == conditions


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("delay=0.2s", LinkConditions(delay_ms=200.0)),
        ("delay=500us", LinkConditions(delay_ms=0.5)),
        ("loss=0.5", LinkConditions(loss=0.5)),
        ("delay=20, loss=100%", LinkConditions(delay_ms=20.0, loss=1.0)),
    ],
)
def test_units_and_separators(text: str, expected: LinkConditions) -> None:
    assert parse_conditions(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "at least one"),
        ("delay=50", None),
        ("delay=fast", "cannot read 'delay=fast'"),
        ("latency=5ms", "unknown setting 'latency'"),
        ("delay=5ms delay=6ms", "given twice"),
        ("delay=5kg", "unit 'kg'"),
        ("loss=1ms", "write it in %"),
        ("loss=150%", "not between"),
        ("delay=5ms jitter=10ms", "exceeds the delay"),
        ("delay=20s", "is over"),
    ],
)
def test_what_is_wrong_is_said(text: str, says: str | None) -> None:
    if says is None:
        assert parse_conditions(text).delay_ms == 50.0
        return
    with pytest.raises(WanSpecError, match=says):
        parse_conditions(text)


def test_a_packet_leaves_after_the_delay_and_not_before() -> None:
    line = DelayLine(LinkConditions(delay_ms=50.0), random.Random(1))
    assert line.admit(b"p1", now=10.0)
    assert line.release(10.049) == []
    assert line.next_due() == pytest.approx(10.05)
    assert line.release(10.05) == [b"p1"]
    assert (line.passed, line.dropped) == (1, 0)


def test_jitter_spreads_within_bounds_but_never_reorders() -> None:
    line = DelayLine(LinkConditions(delay_ms=50.0, jitter_ms=10.0), random.Random(7))
    for index in range(500):
        line.admit(index.to_bytes(2, "big"), now=index * 0.001)
    delays: dict[int, float] = {}
    order: list[int] = []
    while (due := line.next_due()) is not None:
        for packet in line.release(due):
            index = int.from_bytes(packet, "big")
            order.append(index)
            delays[index] = due - index * 0.001
    assert order == list(range(500))
    delays_s = list(delays.values())
    assert min(delays_s) >= 0.040 - 1e-9
    assert max(delays_s) <= 0.060 + 1e-9  # held behind a predecessor: still within its bound
    assert max(delays_s) - min(delays_s) > 0.015  # the jitter is really there


def test_loss_drops_about_the_configured_share() -> None:
    line = DelayLine(LinkConditions(loss=0.1), random.Random(3))
    admitted = sum(line.admit(b"x", now=0.0) for _ in range(10_000))
    assert 8_700 < admitted < 9_300
    assert line.dropped == 10_000 - admitted


def test_a_cut_drops_everything_including_what_was_in_flight() -> None:
    line = DelayLine(LinkConditions(delay_ms=50.0), random.Random(1))
    line.admit(b"in-flight", now=0.0)
    assert line.flush() == 1
    line.conditions = line.conditions.cut_off(True)
    assert not line.admit(b"during", now=0.01)
    assert line.release(1.0) == []
    line.conditions = line.conditions.cut_off(False)
    assert line.admit(b"after", now=2.0)
    assert line.release(2.05) == [b"after"]
    assert line.dropped == 2


def test_the_address_plan_keeps_sites_on_separate_subnets_and_names_short() -> None:
    plan = AddressPlan(250)
    assert plan.site_ip(0) == "10.201.250.2" and plan.gateway_ip(0) == "10.201.250.1"
    assert plan.site_ip(1) == "10.201.250.6" and plan.subnet(1) == "10.201.250.4/30"
    assert plan.loader_ip() == "10.201.250.10"
    assert len({plan.namespace(0), plan.namespace(1), plan.namespace(2)}) == 3
    assert all(len(name) <= 15 for name in (plan.root_veth(1), plan.tun(1)))  # IFNAMSIZ


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"sites": ["a"]}, "two sites"),
        ({"db": "postgres"}, "--db sqlite"),
        ({"sentinel": True}, "without --sentinel"),
    ],
)
def test_wan_options_that_cannot_work_are_refused(changes: dict[str, object], says: str) -> None:
    options = BenchOptions(sites=["a", "b"], wan=LinkConditions(delay_ms=50.0))
    for name, value in changes.items():
        setattr(options, name, value)
    with pytest.raises(BenchError, match=says):
        options.validate()


def test_without_root_a_wan_bench_says_why_before_starting_anything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    options = BenchOptions(sites=["a", "b"], wan=LinkConditions(delay_ms=50.0))
    with pytest.raises(BenchError, match="--wan needs root"):
        options.validate()
