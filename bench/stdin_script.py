"""Commands typed on stdin for the long-running board commands (``virtual-board``,
``emulate``): one reader, one way to hand the terminal back.

The commands read stdin through asyncio next to the board they run; EOF (a closed or
redirected stdin) leaves the board running until a signal, and a stdin that asyncio cannot
read (a regular file) is no error: the board just runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator


async def stdin_lines() -> AsyncIterator[str]:
    """Each line of stdin, stripped, until EOF; none when stdin cannot be read this way."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    except (ValueError, OSError):
        return  # no usable stdin (closed, or a file)
    while line := await reader.readline():
        yield line.decode(errors="replace").strip()


async def run_script(runner: asyncio.Task[None], handle: Callable[[str], bool]) -> None:
    """Feed stdin lines to ``handle`` while ``runner`` runs; ``handle`` returns False to stop
    reading (``quit``). EOF stops reading and leaves ``runner`` running."""
    async for text in stdin_lines():
        if runner.done() or not handle(text):
            return


@contextlib.contextmanager
def stdin_restored() -> Iterator[None]:
    """Give stdin back blocking on the way out: reading it through asyncio made it
    non-blocking, and a shell sharing the terminal must get it back as it was."""
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            os.set_blocking(sys.stdin.fileno(), True)
