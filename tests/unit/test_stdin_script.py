"""The board commands' stdin reader: lines until ``quit`` or EOF, and a file is no error."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile

import pytest

from bench.stdin_script import run_script


def stdin_from_pipe(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    read, write = os.pipe()
    os.write(write, data)
    os.close(write)
    monkeypatch.setattr(sys, "stdin", os.fdopen(read, "rb", buffering=0))


async def script(handle_until: str | None) -> tuple[list[str], bool]:
    seen: list[str] = []

    def handle(text: str) -> bool:
        seen.append(text)
        return text != handle_until

    runner = asyncio.create_task(asyncio.sleep(60))
    try:
        await run_script(runner, handle)
        return seen, runner.done()
    finally:
        runner.cancel()


async def test_lines_stop_at_the_handlers_quit(monkeypatch: pytest.MonkeyPatch) -> None:
    stdin_from_pipe(monkeypatch, b"  swipe 04A1 \nquit\nnever\n")
    assert await script("quit") == (["swipe 04A1", "quit"], False)


async def test_eof_stops_reading_and_leaves_the_board_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stdin_from_pipe(monkeypatch, b"help\n\xff\n")  # a byte that is not UTF-8 is replaced
    seen, runner_done = await script(None)
    assert seen == ["help", "\ufffd"]
    assert runner_done is False


async def test_a_regular_file_as_stdin_is_no_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with tempfile.TemporaryFile() as handle:
        handle.write(b"swipe 1\n")
        handle.seek(0)
        monkeypatch.setattr(sys, "stdin", handle)
        assert await script(None) == ([], False)
