"""Pure ingest decisions: trust on first use and drift, range checks, badge authorisation."""

from __future__ import annotations

import pytest

from backend.contract import StatusMessage, TelemetryMessage
from backend.ingest.decisions import (
    DeviceTrust,
    authorize_badge,
    check_reading,
    decide_status,
)
from backend.settings import DEFAULT_TELEMETRY_THRESHOLDS
from backend.store import TrustStatus

H1, H2, H3 = "a1" * 32, "b2" * 32, "c3" * 32


def status(firmware_hash: str | None) -> StatusMessage:
    return StatusMessage(
        device_type="access_control_node",
        board_family="stm32f401",
        firmware_stack="rust_embassy",
        firmware_version="0.1.0",
        device_id="stm32f401-door-01",
        firmware_hash=firmware_hash,
    )


def test_unknown_device_without_hash_stays_unknown() -> None:
    decision = decide_status(None, status(None))
    assert decision.trust_status is TrustStatus.UNKNOWN
    assert decision.baseline is None
    assert not decision.drift_alert


def test_first_hash_becomes_the_trusted_baseline() -> None:
    decision = decide_status(DeviceTrust(None, None, TrustStatus.UNKNOWN), status(H1))
    assert decision.trust_status is TrustStatus.TRUSTED
    assert decision.baseline == H1
    assert decision.baseline_recorded
    assert not decision.drift_alert


def test_same_hash_keeps_trust_and_status_without_hash_changes_nothing() -> None:
    trusted = DeviceTrust(H1, H1, TrustStatus.TRUSTED)
    assert decide_status(trusted, status(H1)).trust_status is TrustStatus.TRUSTED
    kept = decide_status(trusted, status(None))
    assert (kept.trust_status, kept.baseline, kept.drift_alert) == (TrustStatus.TRUSTED, H1, False)


def test_changed_hash_is_drift_with_one_alert_per_new_hash() -> None:
    trusted = DeviceTrust(H1, H1, TrustStatus.TRUSTED)
    first = decide_status(trusted, status(H2))
    assert first.trust_status is TrustStatus.DRIFT_DETECTED
    assert first.baseline == H1, "the baseline never moves to the drifted hash"
    assert first.drift_alert
    drifted = DeviceTrust(first.baseline, first.reported_hash, first.trust_status)
    assert not decide_status(drifted, status(H2)).drift_alert, "a heartbeat is not news"
    assert decide_status(drifted, status(H3)).drift_alert, "another hash is"


def test_drift_is_sticky_when_the_baseline_comes_back() -> None:
    drifted = DeviceTrust(H1, H2, TrustStatus.DRIFT_DETECTED)
    back = decide_status(drifted, status(H1))
    assert back.trust_status is TrustStatus.DRIFT_DETECTED
    assert not back.drift_alert


def reading(metric: str, value: float) -> TelemetryMessage:
    return TelemetryMessage(device_id="esp32s3-env-01", metric=metric, value=value, unit="C")


@pytest.mark.parametrize(
    ("metric", "value", "anomalous"),
    [
        ("temperature_c", -4.25, False),
        ("temperature_c", -20.0, False),
        ("temperature_c", 60.0, False),
        ("temperature_c", 60.01, True),
        ("temperature_c", -20.5, True),
        ("humidity_pct", 101.0, True),
        ("battery_pct", 4.0, True),
        ("unthresholded_metric", 1e9, False),
    ],
)
def test_range_check(metric: str, value: float, anomalous: bool) -> None:
    anomaly = check_reading(DEFAULT_TELEMETRY_THRESHOLDS, reading(metric, value))
    assert (anomaly is not None) is anomalous
    if anomaly is not None:
        assert metric in anomaly.describe()
        assert ("below" in anomaly.describe()) is (value < anomaly.low)


GRANTS = [("0455AF21", ["stm32f401-door-03"]), ("CAFEBABE", ["*"])]


@pytest.mark.parametrize(
    ("uid", "door", "allowed"),
    [
        ("0455AF21", "stm32f401-door-03", True),
        ("0455af21", "stm32f401-door-03", True),
        ("0455AF21", "stm32f401-door-04", False),
        ("CAFEBABE", "any-door-at-all", True),
        ("DEADBEEF", "stm32f401-door-03", False),
    ],
)
def test_badge_authorisation(uid: str, door: str, allowed: bool) -> None:
    assert authorize_badge(GRANTS, uid, door) is allowed


def test_no_grants_means_no_door() -> None:
    assert not authorize_badge([], "0455AF21", "stm32f401-door-03")
