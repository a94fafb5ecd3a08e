"""What a simulated node can be told to do wrong (issue 3): the faults, their checks, and
the payloads of the contract-breaking ones. The node applies them (:mod:`simulators.node`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from backend.contract import (
    AlertMessage,
    ContractViolation,
    MessageKind,
    Severity,
    TelemetryMessage,
    encode,
    validate_device_id,
)
from simulators.errors import FaultError


class Fault(StrEnum):
    """What a node can be told to do wrong (issue 3)."""

    FIRMWARE_DRIFT = "firmware_drift"
    SENSOR_FAILURE = "sensor_failure"
    OFFLINE = "offline"
    ONLINE = "online"
    CLOCK_SKEW = "clock_skew"
    MALFORMED_PAYLOAD = "malformed_payload"
    IMPERSONATE = "impersonate"
    REPLAY_ATTESTATION = "replay_attestation"
    C2_BEACON = "c2_beacon"


@dataclass(frozen=True, slots=True)
class InjectedFault:
    """A fault and when it was applied."""

    fault: Fault
    at_s: float
    params: dict[str, Any] = field(default_factory=dict)


def check_fault(
    device_id: str, fault: Fault, params: dict[str, Any], *, has_attestations: bool
) -> None:
    """Refuse, now and with a clear message, a fault that cannot be applied later."""
    if fault is Fault.REPLAY_ATTESTATION and params.get("now") and not has_attestations:
        raise FaultError(
            f"{device_id}: no earlier attestation response to replay; challenge the node once first"
        )
    for name, value in params.items():
        timed = name.endswith("_s") and name != "skew_s" and value is not None
        if timed and (not isinstance(value, int | float) or not value >= 0):
            raise FaultError(f"{fault.value}: {name} must be a number >= 0, got {value!r}")
    if fault is Fault.C2_BEACON and not params.get("interval_s", 60.0) > 0:
        raise FaultError("c2_beacon: interval_s must be > 0")
    if fault is Fault.IMPERSONATE:
        try:
            validate_device_id(str(params.get("target", "")))
            kind = MessageKind(params.get("kind", "status"))
        except (ContractViolation, ValueError) as error:
            raise FaultError(f"impersonate: {error}") from None
        if not kind.upstream:
            raise FaultError(f"impersonate: {kind.value} is not a device -> backend kind")
    if fault is Fault.MALFORMED_PAYLOAD:
        variant = params.get("variant", "not_json")
        if variant not in MALFORMED:
            raise FaultError(
                f"malformed_payload: variant {variant!r} unknown; one of {', '.join(MALFORMED)}"
            )
    if fault is Fault.CLOCK_SKEW and not isinstance(params.get("skew_s"), int | float):
        raise FaultError("clock_skew: give skew_s, a number of seconds (may be negative)")


def impersonated_payload(kind: MessageKind, target: str) -> bytes:
    """A plausible payload of ``kind`` claiming to come from ``target``."""
    if kind is MessageKind.TELEMETRY:
        return encode(
            TelemetryMessage(device_id=target, metric="temperature_c", value=21.0, unit="C")
        )
    if kind is MessageKind.ALERTS:
        return encode(
            AlertMessage(
                device_id=target, type="sensor_unhealthy", severity=Severity.LOW, event_details="x"
            )
        )
    if kind is MessageKind.BADGE_EVENT:
        return b'{"device_id":"%s","uid":"DEADBEEF","event":"badge_read"}' % target.encode()
    return b'{"device_id":"%s"}' % target.encode()


MALFORMED: dict[str, Callable[[str], bytes]] = {
    "not_json": lambda _id: b"{temperature: 21.5",
    "non_finite": lambda d: (
        b'{"device_id":"%s","metric":"temperature_c","value":NaN,"unit":"C"}' % d.encode()
    ),
    "unknown_field": lambda d: (
        b'{"device_id":"%s","metric":"temperature_c","value":1.0,"unit":"C","x":1}' % d.encode()
    ),
    "wrong_type": lambda d: (
        b'{"device_id":"%s","metric":"temperature_c","value":"hot","unit":"C"}' % d.encode()
    ),
    "oversize": lambda d: (
        b'{"device_id":"%s","metric":"temperature_c","value":1.0,"unit":"%s"}'
        % (d.encode(), b"C" * 5000)
    ),
}
