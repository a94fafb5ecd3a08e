"""``aurora-bench up`` run as a user runs it, for the e2e tests: a subprocess that is
waited for, stopped with a signal, and never left running when a test fails."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import psutil
import pytest

CLI = str(Path(sys.executable).parent / "aurora-bench")
START_DEADLINE_S = 90.0


@contextmanager
def up(*args: str, stdout: int | IO[str] = subprocess.PIPE) -> Iterator[subprocess.Popen[str]]:
    """``aurora-bench up ARGS``, its output (stderr too) in ``stdout``; killed on the way out
    if it still runs, so a failed assertion leaves no bench behind."""
    proc = subprocess.Popen([CLI, "up", *args], stdout=stdout, stderr=subprocess.STDOUT, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def sigterm(proc: subprocess.Popen[str], timeout_s: float = 60) -> str:
    """Stop the bench as a service manager does; its whole output once it has exited."""
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=timeout_s)
    return output


def wait_for_bench_file(proc: subprocess.Popen[str], state_dir: Path) -> None:
    """Until ``up`` has written bench.json: it is ready then (fails if it exits first)."""
    deadline = time.monotonic() + START_DEADLINE_S
    while not (state_dir / "bench.json").exists():
        if proc.poll() is not None:
            output = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"aurora-bench up exited with {proc.returncode}:\n{output}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("aurora-bench up wrote no bench.json in time")
        time.sleep(0.1)


def descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
