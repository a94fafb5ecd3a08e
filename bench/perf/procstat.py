"""CPU seconds of a process from ``/proc`` (no extra dependency), shared by the figures
that charge a connect, a board or a reading to the process that paid for it.

On a machine shared with other work, a rate in msg/s says as much about the neighbours as
about the code; the CPU time spent per message does not (much): 1 / that time is the rate
the process would sustain on a core of its own.
"""

from __future__ import annotations

import os
from pathlib import Path


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of ``pid`` (None when there is none or it cannot be read)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its direct children (a backend and its ingest workers; 0
    for what cannot be read)."""
    total = cpu_seconds(pid) or 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = Path(entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
        except (OSError, IndexError):
            continue
        if ppid == str(pid):
            total += cpu_seconds(int(entry.name)) or 0.0
    return total


def run_queue_wait_seconds(pid: int) -> float:
    """Seconds ``pid``'s main thread spent runnable but waiting for a CPU (0 when gone or
    without scheduler statistics): how much of a slow run the machine's load explains."""
    try:
        fields = Path(f"/proc/{pid}/schedstat").read_text().split()
    except OSError:
        return 0.0
    return int(fields[1]) / 1e9 if len(fields) > 1 else 0.0
