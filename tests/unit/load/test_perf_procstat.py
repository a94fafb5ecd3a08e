"""bench/perf/procstat.py reads CPU time from /proc, children included (the drain figure's
CPU per reading sums the backend and its ingest workers)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from bench.perf.procstat import cpu_seconds, run_queue_wait_seconds, tree_cpu_seconds

BURN = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"


def test_cpu_of_this_process_grows_with_work() -> None:
    before = cpu_seconds(os.getpid())
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    after = cpu_seconds(os.getpid())
    assert before is not None and after is not None
    assert after - before >= 0.15


def test_tree_counts_a_child_that_burned_cpu() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", BURN + "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while (cpu_seconds(child.pid) or 0.0) < 0.25 and time.monotonic() < deadline:
            time.sleep(0.05)
        own = cpu_seconds(os.getpid()) or 0.0
        assert tree_cpu_seconds(os.getpid()) - own >= 0.25
    finally:
        child.communicate(b"")


def test_a_gone_process_has_spent_nothing() -> None:
    assert tree_cpu_seconds(2**22 + 1) == 0.0  # above the largest pid_max Linux allows


def test_run_queue_wait_of_a_gone_process_is_nothing() -> None:
    assert run_queue_wait_seconds(2**22 + 1) == 0.0
