"""The federation's response models read their rows by field name: every field must be a
column of its row, and times come out as RFC 3339 text."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from backend.federation.routes import LinkOut, SharedIocOut, SiteOut
from backend.federation.tables import SharedIocRow, SiteLinkRow, SiteRow


@pytest.mark.parametrize(
    ("model", "row"), [(SiteOut, SiteRow), (LinkOut, SiteLinkRow), (SharedIocOut, SharedIocRow)]
)
def test_every_response_field_is_a_column_of_its_row(model: type, row: type) -> None:
    columns = set(row.__table__.columns.keys())  # type: ignore[attr-defined]
    assert set(model.model_fields) <= columns  # type: ignore[attr-defined]


def test_a_link_row_reads_as_the_api_shows_it() -> None:
    at = datetime(2026, 12, 1, 19, 0, 0, 250_000, tzinfo=UTC)
    row = SiteLinkRow(
        link_id="a--b", site_a="a", site_b="b", status="healthy", latency_ms=1.5,
        last_heartbeat=at, status_since=at, updated_at=at,
    )  # fmt: skip
    assert LinkOut.of(row).model_dump() == {
        "link_id": "a--b",
        "site_a": "a",
        "site_b": "b",
        "status": "healthy",
        "latency_ms": 1.5,
        "last_heartbeat": "2026-12-01T19:00:00.250Z",
        "status_since": "2026-12-01T19:00:00.250Z",
    }
    iocs = SharedIocRow(
        dedup_key="k", origin_site="b", type="ip", value="198.51.100.23", context="",
        first_seen=at, last_seen=None,
    )  # fmt: skip
    assert SharedIocOut.of(iocs).last_seen is None
