"""CPU seconds of a process from ``/proc`` (no extra dependency), shared by the figures
that charge a connect or a board to the process that paid for it."""

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
