"""``mosquitto_sub`` as an arrival clock: one printed line per message, each stamped.

Used by the figures that compare against the broker's own C clients (the ingest baseline,
the policy plugin's throughput): a thread reads the line-buffered output and records
``time.perf_counter()`` per message, so the Python side never throttles the subscriber.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Sequence

from bench.errors import BenchError
from bench.load.clients import MeasurementError


def c_clients() -> tuple[str, str] | None:
    """Paths of ``mosquitto_pub`` and ``mosquitto_sub`` (package mosquitto-clients), if any."""
    pub, sub = shutil.which("mosquitto_pub"), shutil.which("mosquitto_sub")
    return (pub, sub) if pub and sub else None


def require_c_clients() -> tuple[str, str]:
    """Like :func:`c_clients`, but BenchError saying what to install when they are missing."""
    tools = c_clients()
    if tools is None:
        raise BenchError("mosquitto_pub/mosquitto_sub missing: apt-get install mosquitto-clients")
    return tools


class LineCounter:
    """``mosquitto_sub`` (line-buffered) with a thread timestamping each printed message."""

    def __init__(self, args: Sequence[str], topic: str, name: str = "subscriber") -> None:
        self.name = name
        self._process = subprocess.Popen(
            ["stdbuf", "-oL", require_c_clients()[1], *args, "-t", topic],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.times: list[float] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, name=name, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for _ in iter(self._process.stdout.readline, b""):
            now = time.perf_counter()
            with self._cond:
                self.times.append(now)
                self._cond.notify_all()

    def wait_count(self, count: int, timeout_s: float) -> None:
        """Block until ``count`` lines (messages) were printed in total; MeasurementError
        (with the subscriber's stderr if it ended) otherwise."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while len(self.times) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._process.poll() is not None:
                    stderr = b""
                    if self._process.poll() is not None and self._process.stderr is not None:
                        stderr = self._process.stderr.read()
                    raise MeasurementError(
                        f"{self.name} saw {len(self.times)} of {count} messages"
                        f" {stderr.decode(errors='replace').strip()}".rstrip()
                    )
                self._cond.wait(min(remaining, 0.2))

    def close(self) -> None:
        """Stop mosquitto_sub (safe to call twice)."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._thread.join(timeout=5)
        for stream in (self._process.stdout, self._process.stderr):
            if stream is not None:
                stream.close()
