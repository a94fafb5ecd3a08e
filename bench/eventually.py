"""``eventually``: poll a condition until it holds, for tests and the scenario runner.

One helper instead of a copy per test module. The check may be a plain function or a
coroutine function; the first truthy value it returns is the result. At the deadline the
error names what was awaited and the last value seen, so a failing test says why::

    device = await eventually(lambda: store.device("door-01"), "door-01 registered")
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

#: Default time a condition gets to become true.
DEFAULT_TIMEOUT_S = 20.0
#: Default pause between two checks.
DEFAULT_INTERVAL_S = 0.05


class NotYet(AssertionError):
    """The condition did not hold before the deadline (an ``AssertionError``, so pytest
    reports it as a test failure, not an error)."""

    def __init__(self, what: str, timeout_s: float, last: object) -> None:
        self.what = what
        self.timeout_s = timeout_s
        self.last = last
        super().__init__(f"timed out after {timeout_s:g} s waiting for {what}; last: {last!r}")


async def eventually(
    check: Callable[[], T | Awaitable[T | None] | None],
    what: str,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    *,
    interval_s: float = DEFAULT_INTERVAL_S,
) -> T:
    """Call ``check`` (sync or async) until it returns something truthy; return that.

    Raises :class:`NotYet` (an ``AssertionError``) after ``timeout_s`` seconds, naming
    ``what`` and the last value ``check`` returned.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last: object = None
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        last = value
        if value:
            return value  # type: ignore[return-value]
        if loop.time() >= deadline:
            raise NotYet(what, timeout_s, last)
        await asyncio.sleep(interval_s)
