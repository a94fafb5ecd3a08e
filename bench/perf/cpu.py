"""CPU time of a process and its children, from ``/proc`` (Linux).

On a machine shared with other work, a rate in msg/s says as much about the neighbours as
about the code; the CPU time a process spent per message does not (much): 1 / that time
is the rate it would sustain on a core of its own.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (0 when it is gone)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # utime and stime are fields 14 and 15 of stat(5); the list starts at field 3.
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its direct children (the backend and its ingest workers)."""
    total = cpu_seconds(pid)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and fields[1] == str(pid):
            total += cpu_seconds(int(entry.name))
    return total


def run_queue_wait_seconds(pid: int) -> float:
    """Seconds ``pid``'s main thread spent runnable but waiting for a CPU (0 when gone or
    without scheduler statistics): how much of a slow run the machine's load explains."""
    try:
        fields = Path(f"/proc/{pid}/schedstat").read_text().split()
    except OSError:
        return 0.0
    return int(fields[1]) / 1e9 if len(fields) > 1 else 0.0
