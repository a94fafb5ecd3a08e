"""Where the backend's time goes: py-spy samples of the backend process during a measurement.

``python -m bench.perf --only ingest --profile`` records the site's backend with py-spy (if
installed: ``pip install py-spy``) while the ingest throughput blast runs, writes the raw
collapsed stacks next to the results and prints the frames with the largest inclusive share.
:func:`hot_frames` is pure (a collapsed-stack file in, shares out).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from bench.perf.runner import PerfContext

_LINE_NUMBER = re.compile(r":\d+\)$")
#: Frames worth showing: ours and the libraries on the ingest path.
INTERESTING = (
    "backend/",
    "paho",
    "redis",
    "aiomqtt",
    "pydantic",
    "sqlalchemy",
    "ssl.py",
    "json",
    "asyncio",
    "uvloop",
)


def hot_frames(
    lines: Iterable[str], interesting: tuple[str, ...] = INTERESTING, top: int = 25
) -> list[tuple[float, str]]:
    """Inclusive share (percent of samples) of each frame in py-spy ``--format raw`` lines.

    A line is ``frame;frame;...;frame COUNT``; a frame counts once per stack even when it
    recurses, and line numbers are dropped so one function is one row.
    """
    total = 0
    inclusive: Counter[str] = Counter()
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        for frame in {_LINE_NUMBER.sub(")", frame) for frame in stack.split(";")}:
            inclusive[frame] += count
    if total == 0:
        return []
    rows = [
        (100.0 * count / total, frame)
        for frame, count in inclusive.most_common()
        if any(mark in frame for mark in interesting)
    ]
    return rows[:top]


def backend_pid(ctx: PerfContext) -> int | None:
    """PID of the site's backend: the ``-m backend`` process working in the site directory."""
    site_dir = ctx.bench.site_dir(ctx.site_id).resolve()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if Path(proc / "cwd").resolve() != site_dir:
                continue
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"backend" in argv and b"-m" in argv:
            return int(proc.name)
    return None


class BackendProfiler:
    """py-spy recording the backend until :meth:`finish` (a no-op when py-spy is missing)."""

    def __init__(self, ctx: PerfContext, output: Path) -> None:
        self.output = output
        self._process: subprocess.Popen[bytes] | None = None
        self.problem: str | None = None
        # The venv's bin is not on PATH when run as .venv/bin/python -m bench.perf.
        py_spy = shutil.which("py-spy") or shutil.which(
            "py-spy", path=str(Path(sys.executable).parent)
        )
        pid = backend_pid(ctx)
        if py_spy is None:
            self.problem = "py-spy is not installed (pip install py-spy)"
        elif pid is None:
            self.problem = "backend process not found"
        else:
            output.parent.mkdir(parents=True, exist_ok=True)
            command = [py_spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "200"]
            command += ["--nonblocking", "--output", str(output)]
            self._process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )

    def finish(self, timeout_s: float = 60.0) -> list[tuple[float, str]]:
        """Stop py-spy (SIGINT makes it write its file); the hot frames (empty if none)."""
        if self._process is None:
            return []
        self._process.send_signal(signal.SIGINT)
        try:
            _, stderr = self._process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.communicate()
            self.problem = "py-spy did not finish"
            return []
        if not self.output.exists():
            self.problem = f"py-spy wrote nothing: {stderr.decode(errors='replace').strip()}"
            return []
        with self.output.open() as handle:
            return hot_frames(handle)
