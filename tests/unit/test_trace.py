"""The aurora-trace property check (issue 11.6): the load tool's format, bounded."""

import pytest

from backend.contract.trace import MAX_TRACE_CHARS, valid_trace
from bench.load.trace import Trace


@pytest.mark.parametrize(
    "value",
    [
        "esp32s3-env-01:0:1700000000000000000",
        Trace("x" * 64, 10**18 - 1, 10**20 - 1).encode(),  # the longest the load tool makes
    ],
)
def test_traces_of_the_load_tool_are_valid(value: str) -> None:
    assert valid_trace(value)
    assert len(value) <= MAX_TRACE_CHARS


@pytest.mark.parametrize(
    "value",
    [
        "",
        "t-1",
        "a:1",
        "a:1:2:3",
        "a b:1:2",
        "a:-1:2",
        "a:1:2\n",
        "a:1:" + "9" * 21,
        "x" * 65 + ":1:2",
        "dev:1:2" + "A" * 60_000,  # issue 11.6: 60 KB per audit entry
    ],
)
def test_anything_else_is_invalid(value: str) -> None:
    assert not valid_trace(value)
