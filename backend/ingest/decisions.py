"""Pure decisions of the ingest handlers: no I/O, so they are tested without servers.

* :func:`decide_status` — trust on first use of the firmware hash, drift detection (seed 001,
  ADR 052).
* :func:`check_reading` — per-metric range check of a telemetry reading.
* :func:`authorize_badge` — does any grant let this UID open this door?
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from backend.contract import StatusMessage, TelemetryMessage
from backend.store.models import TrustStatus

#: A grant's device list that opens every door.
ANY_DOOR = "*"


@dataclass(frozen=True, slots=True)
class DeviceTrust:
    """The trust-relevant state of a known device."""

    firmware_hash: str | None
    reported_hash: str | None
    trust_status: TrustStatus


@dataclass(frozen=True, slots=True)
class StatusDecision:
    """What a status message does to its device."""

    trust_status: TrustStatus
    baseline: str | None
    reported_hash: str | None
    #: True when this message shows a *new* drifted hash: raise one tamper alert for it.
    drift_alert: bool
    #: True when this message records the baseline for the first time.
    baseline_recorded: bool


def decide_status(current: DeviceTrust | None, message: StatusMessage) -> StatusDecision:
    """Apply trust-on-first-use to a status message.

    The first reported hash becomes the trusted baseline. A later different hash flips the
    device to ``drift_detected`` and asks for a tamper alert once per new hash (heartbeats
    repeating the same drifted hash do not flood the alert queue). Drift is sticky: a
    device reporting its baseline again stays ``drift_detected`` until an operator acts,
    because a tampered node can lie about its hash.
    """
    state = current or DeviceTrust(None, None, TrustStatus.UNKNOWN)
    reported = message.firmware_hash
    if reported is None:
        return StatusDecision(
            state.trust_status, state.firmware_hash, state.reported_hash, False, False
        )
    if state.firmware_hash is None:
        status = (
            TrustStatus.TRUSTED
            if state.trust_status is not TrustStatus.DRIFT_DETECTED
            else state.trust_status
        )
        return StatusDecision(status, reported, reported, False, True)
    if reported == state.firmware_hash:
        return StatusDecision(state.trust_status, state.firmware_hash, reported, False, False)
    new_drift = reported != state.reported_hash or (
        state.trust_status is not TrustStatus.DRIFT_DETECTED
    )
    return StatusDecision(
        TrustStatus.DRIFT_DETECTED, state.firmware_hash, reported, new_drift, False
    )


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A reading outside its metric's range."""

    metric: str
    value: float
    low: float
    high: float

    def describe(self) -> str:
        """One sentence for the alert."""
        side = "below" if self.value < self.low else "above"
        bound = self.low if self.value < self.low else self.high
        return (
            f"{self.metric}={self.value:g} is {side} the allowed range "
            f"[{self.low:g}, {self.high:g}] (limit {bound:g})"
        )


def check_reading(
    thresholds: Mapping[str, tuple[float, float]], message: TelemetryMessage
) -> Anomaly | None:
    """The anomaly of ``message`` against ``thresholds``, or None (in range or unchecked)."""
    limits = thresholds.get(message.metric)
    if limits is None:
        return None
    low, high = limits
    if low <= message.value <= high:
        return None
    return Anomaly(message.metric, message.value, low, high)


def normalise_uid(uid: str) -> str:
    """Badge UIDs compare case-insensitively (readers differ in hex case)."""
    return uid.upper()


def authorize_badge(grants: Iterable[tuple[str, Sequence[str]]], uid: str, device_id: str) -> bool:
    """True when a grant ``(uid, device_ids)`` lets ``uid`` open ``device_id``."""
    wanted = normalise_uid(uid)
    for grant_uid, device_ids in grants:
        if normalise_uid(grant_uid) != wanted:
            continue
        if ANY_DOOR in device_ids or device_id in device_ids:
            return True
    return False
