"""The API's alert model is derived from AlertRecord: it must describe ``as_json()`` exactly."""

from __future__ import annotations

from datetime import UTC, datetime

from backend.alerts import AlertRecord
from backend.api.alerts import AlertOut
from backend.contract import Severity


def test_the_api_model_is_exactly_what_as_json_returns() -> None:
    record = AlertRecord(
        id="a-1",
        type="c2_beacon",
        severity=Severity.HIGH,
        title="t",
        description="",
        device_id=None,
        source="api",
        origin_site="b",
        origin_alert_id="b-9",
        iocs=[{"type": "ip", "value": "198.51.100.23"}],
        details={"k": 1},
        created_at=datetime(2026, 12, 1, tzinfo=UTC),
        dedup_key="internal",
    )
    shown = record.as_json()
    assert list(AlertOut.model_fields) == list(shown)
    assert AlertOut.model_validate(shown).model_dump(mode="json") == shown
    assert "dedup_key" not in AlertOut.model_fields
