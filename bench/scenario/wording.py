"""Expectations in words: one description per kind (reports, failures, progress lines)."""

from __future__ import annotations

import functools
from typing import Any

from bench.scenario.checks import (
    AlertExpect,
    AlertFilter,
    AuditExpect,
    CommandExpect,
    DeviceExpect,
    EventMatch,
    LatencyExpect,
    LinkExpect,
    LockExpect,
    MetricExpect,
    NoAlertExpect,
    NoCommandExpect,
)
from bench.scenario.schema import ExpectationItem
from bench.scenario.token_checks import describe_connect, describe_publish, describe_subscribe
from bench.scenario.windows import seconds_text as _s


@functools.singledispatch
def describe(body: object) -> str:
    """The expectation in words."""
    raise TypeError(f"no description for {type(body).__name__}")


describe.register(describe_connect)
describe.register(describe_subscribe)
describe.register(describe_publish)


@describe.register
def _(item: ExpectationItem) -> str:
    return describe(item.body)


@describe.register
def _(body: AlertExpect) -> str:
    n = _count(body.count, "alert")
    return f"{n} {_alert_filter(body)} within {_s(body.within)}{_since(body)}"


@describe.register
def _(body: NoAlertExpect) -> str:
    return f"no alert {_alert_filter(body)} for {_s(body.for_)}"


@describe.register
def _(body: DeviceExpect) -> str:
    return f"device {body.device} {_device_filter(body)} within {_s(body.within)}{_held(body)}"


@describe.register
def _(body: CommandExpect) -> str:
    n = _count(body.count, f"`{body.verb.value}` command")
    return f"{n} received by {body.device} within {_s(body.within)}"


@describe.register
def _(body: NoCommandExpect) -> str:
    verb = f"`{body.verb.value}` " if body.verb else ""
    return f"no {verb}command to {body.device} for {_s(body.for_)}"


@describe.register
def _(body: LockExpect) -> str:
    return f"door {body.device} {body.state} within {_s(body.within)}{_held(body)}"


@describe.register
def _(body: AuditExpect) -> str:
    extra = _fields(body.data, device=body.device, site=body.site)
    n = _count(body.count, f"audit entry `{body.type}`")
    return f"{n}{extra} within {_s(body.within)}{_since(body)}"


@describe.register
def _(body: LinkExpect) -> str:
    return (
        f"link {body.site}<->{body.peer} {body.status} as {body.site} sees it "
        f"within {_s(body.within)}{_held(body)}"
    )


@describe.register
def _(body: MetricExpect) -> str:
    labels = ",".join(f"{k}={v}" for k, v in body.labels.items())
    where = f" at site {body.site}" if body.site else ""
    return f"{body.name}{{{labels}}}{where} up by >= {body.increase:g} within {_s(body.within)}"


@describe.register
def _(body: LatencyExpect) -> str:
    bounds = ", ".join(
        f"{name} <= {_s(value)}"
        for name, value in (("p50", body.p50), ("p99", body.p99), ("max", body.max))
        if value is not None
    )
    return f"latency {_match_text(body.from_)} -> {_match_text(body.to)}: {bounds}"


def _since(body: AlertExpect | AuditExpect) -> str:
    return " (since the scenario began)" if body.scope == "scenario" else ""


def _held(body: LockExpect | DeviceExpect | LinkExpect) -> str:
    return "" if body.for_ is None else f", then held for {_s(body.for_)}"


def _count(count: int, noun: str) -> str:
    return (
        f"an {noun}"
        if count == 1 and noun.lstrip("`")[0] in "aeiou"
        else (f"a {noun}" if count == 1 else f"{count} x {noun}")
    )


def _fields(values: dict[str, Any], **more: Any) -> str:
    shown = {**{k: v for k, v in more.items() if v is not None}, **values}
    return "".join(f" {k}={v}" for k, v in shown.items())


def _alert_filter(body: AlertFilter) -> str:
    parts = _fields(
        body.data if isinstance(body, AlertExpect) else {},
        type=body.type,
        severity=body.severity.value if body.severity else None,
        min_severity=body.min_severity.value if body.min_severity else None,
        device=body.device,
        origin=body.origin,
        contains=repr(body.contains) if body.contains else None,
    ).strip()
    where = f"at site {body.site}" if body.site else "at any site"
    return f"{parts} {where}".strip()


def _device_filter(body: DeviceExpect) -> str:
    if not body.registered:
        return "not registered"
    return (
        _fields(
            {},
            trust=body.trust,
            attestation=body.attestation,
            risk_min=body.risk_min,
            risk_max=body.risk_max,
            firmware_version=body.firmware_version,
            site=body.site,
            last_seen="refreshed" if body.seen_since_step else None,
        ).strip()
        or "registered"
    )


def _match_text(match: EventMatch) -> str:
    extra = _fields(
        {},
        device=match.device,
        verb=match.verb.value if match.verb else None,
        type=match.type,
        message=match.message.value if match.message else None,
        state=match.state,
        site=match.site,
        source=match.source,
    )
    return f"{match.event}{extra}"
