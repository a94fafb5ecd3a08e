"""`bench.eventually`: one poll helper for sync and async checks."""

import asyncio
import itertools

import pytest

from bench.eventually import NotYet, eventually


async def test_a_sync_check_is_polled_until_truthy_and_its_value_returned() -> None:
    counter = itertools.count()
    assert await eventually(lambda: next(counter) >= 3 and "ready", "three polls", 5, interval_s=0)


async def test_an_async_check_is_awaited() -> None:
    ready = asyncio.Event()

    async def check() -> str | None:
        ready.set()
        return "done" if ready.is_set() else None

    assert await eventually(check, "the event") == "done"


async def test_the_deadline_names_what_was_awaited_and_the_last_value() -> None:
    with pytest.raises(NotYet, match=r"waiting for the door to open; last: \[\]") as caught:
        await eventually(lambda: [], "the door to open", 0, interval_s=0)
    assert isinstance(caught.value, AssertionError)  # pytest reports it as a failure
    assert caught.value.last == []
