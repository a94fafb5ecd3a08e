"""The API's input limits as pure functions (issue 11.3, 11.4, 11.7)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from backend.api.validation import MAX_JSON_DEPTH, FreeJson, UtcDatetime, check_free_json


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def test_depth_limit_is_exact() -> None:
    check_free_json(nested(MAX_JSON_DEPTH))
    with pytest.raises(ValueError, match="nested more than 16 levels deep"):
        check_free_json(nested(MAX_JSON_DEPTH + 1))


def test_the_check_itself_never_recurses() -> None:
    with pytest.raises(ValueError, match="nested more than"):
        check_free_json(nested(100_000))  # would blow Python's stack if walked recursively


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_anywhere_are_refused(number: float) -> None:
    with pytest.raises(ValueError, match="finite numbers only"):
        check_free_json({"a": [{"b": number}]})


@pytest.mark.parametrize("value", [{"k": "a\ud800"}, {"k\udfff": 1}])
def test_lone_surrogates_in_keys_or_values_are_refused(value: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="surrogate"):
        check_free_json(value)


def test_free_json_size_is_bounded() -> None:
    adapter = TypeAdapter(FreeJson)
    assert adapter.validate_python({"k": "x" * 16_000}) == {"k": "x" * 16_000}
    with pytest.raises(ValidationError, match="limit 16384"):
        adapter.validate_python({"k": "x" * 17_000})


def test_times_convert_to_utc_or_are_refused() -> None:
    adapter = TypeAdapter(UtcDatetime)
    plus14 = timezone(timedelta(hours=14))
    assert adapter.validate_python("2026-12-01T14:00:00+14:00") == datetime(2026, 12, 1, tzinfo=UTC)
    assert adapter.validate_python("2026-12-01T00:00:00") == datetime(2026, 12, 1, tzinfo=UTC)
    for value in ("9999-12-31T23:59:59-12:00", datetime(1, 1, 1, tzinfo=plus14)):
        with pytest.raises(ValidationError, match="outside the representable range"):
            adapter.validate_python(value)
