"""Mosquitto's C clients as load and counter: ``mosquitto_pub -l`` fed lines on its stdin,
``mosquitto_sub`` printing a line per message, and :func:`line_throughput`, the one
broker-throughput measurement the ingest and policy figures share.

C clients, so a throughput figure is the broker's (and the consumer's), not a Python
client's.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from bench.load.clients import MeasurementError

#: Longest a measurement waits for its messages to arrive.
DRAIN_TIMEOUT_S = 60.0
#: Messages one ``mosquitto_pub -l`` process may send. Past 65,535 its packet ids wrap,
#: and mosquitto_pub 2.0.11 takes the PUBACK of the first message that reused the last
#: id for the last one: it disconnects with the rest in flight (the broker logs "out of
#: memory" and drops them). Larger runs are sent by several processes in turn.
MAX_LINES_PER_PROCESS = 60_000


def c_clients() -> tuple[str, str] | None:
    """Paths of ``mosquitto_pub`` and ``mosquitto_sub`` (package mosquitto-clients), if any."""
    pub, sub = shutil.which("mosquitto_pub"), shutil.which("mosquitto_sub")
    return (pub, sub) if pub and sub else None


def _tools() -> tuple[str, str]:
    tools = c_clients()
    if tools is None:
        raise MeasurementError(
            "mosquitto_pub/mosquitto_sub missing: apt-get install mosquitto-clients"
        )
    return tools


class LinePublisher:
    """``mosquitto_pub -l`` fed through its stdin: one QoS 1 message per line written.

    It stays connected between writes, so a warm-up line can prove the path is open before
    the clock starts. ``args`` are its connection arguments (host, port, TLS, id, QoS).
    """

    def __init__(self, args: Sequence[str], topic: str, trace: tuple[str, str] | None = None):
        command = [_tools()[0], *args, "-t", topic, "-l"]
        if trace is not None:
            command += ["-D", "publish", "user-property", *trace]
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
        )

    def send(self, payload: bytes, count: int = 1) -> None:
        """Queue ``count`` copies of ``payload`` (one message each)."""
        stdin = self._process.stdin
        assert stdin is not None
        try:
            stdin.write((payload + b"\n") * count)
            stdin.flush()
        except BrokenPipeError:
            raise MeasurementError(f"mosquitto_pub exited: {self._stderr()}") from None

    def send_lines(self, data: bytes) -> None:
        """Write ``data``: newline-terminated payloads, one message each."""
        stdin = self._process.stdin
        assert stdin is not None
        try:
            stdin.write(data)
            stdin.flush()
        except BrokenPipeError:
            raise MeasurementError(f"mosquitto_pub exited: {self._stderr()}") from None

    def _stderr(self) -> str:
        self._process.wait(timeout=5)
        assert self._process.stderr is not None
        return self._process.stderr.read().decode(errors="replace").strip()

    def close(self, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        """End of input: mosquitto_pub sends what it has and exits (safe to call twice)."""
        if self._process.stdin is not None and not self._process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self._process.stdin.close()
        try:
            self._process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stderr is not None:
            self._process.stderr.close()


def tls_client_args(
    host: str, port: int, *, ca: Path, cert: Path, key: Path, client_id: str
) -> list[str]:
    """Connection arguments of the mosquitto C clients (MQTT v5, mTLS, QoS 1)."""
    return [
        *("-V", "mqttv5", "-h", host, "-p", str(port)),
        *("--cafile", str(ca), "--cert", str(cert), "--key", str(key)),
        *("-i", client_id, "-q", "1"),
    ]


def publish_lines(
    args: Sequence[str],
    topic: str,
    payload: bytes,
    count: int,
    *,
    trace: tuple[str, str] | None = None,
) -> None:
    """Publish ``count`` copies of ``payload`` at QoS 1 and return once the broker acked
    them all: :data:`MAX_LINES_PER_PROCESS` per ``mosquitto_pub`` process, one after the
    other (the same client id in turn)."""
    left = count
    while left > 0:
        chunk = min(left, MAX_LINES_PER_PROCESS)
        publisher = LinePublisher(args, topic, trace)
        try:
            publisher.send(payload, chunk)
        finally:
            # Waits until mosquitto_pub sent everything, had it acked and exited.
            publisher.close(timeout_s=max(DRAIN_TIMEOUT_S, chunk / 1000))
        left -= chunk


class LineCounter:
    """``mosquitto_sub`` (line-buffered) with a thread timestamping each printed message."""

    def __init__(self, args: Sequence[str], topic: str) -> None:
        self._process = subprocess.Popen(
            ["stdbuf", "-oL", _tools()[1], *args, "-t", topic],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.times: list[float] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, name="line-counter", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for _ in iter(self._process.stdout.readline, b""):
            now = time.perf_counter()
            with self._cond:
                self.times.append(now)
                self._cond.notify_all()

    def wait_count(self, count: int, timeout_s: float) -> None:
        """Block until ``count`` lines (messages) were printed in total."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while len(self.times) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._process.poll() is not None:
                    stderr = b""
                    if self._process.poll() is not None and self._process.stderr is not None:
                        stderr = self._process.stderr.read()
                    raise MeasurementError(
                        f"plain subscriber saw {len(self.times)} of {count} messages"
                        f" {stderr.decode(errors='replace').strip()}"
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


class ArrivalCounter(Protocol):
    """What :func:`line_throughput` needs of a subscriber: arrival times, a wait."""

    times: list[float]

    def wait_count(self, count: int, timeout_s: float) -> None:
        """Block until ``count`` messages arrived in total."""
        ...


def line_throughput(
    publisher: LinePublisher,
    counter: ArrivalCounter,
    payload: bytes,
    count: int,
    timeout_s: float = DRAIN_TIMEOUT_S,
) -> float:
    """QoS 1 messages per second through the broker: ``count`` lines of ``payload``.

    Warm-up lines are repeated until one arrives (connections and the subscription are not
    throughput; the first also fills caches such as the plugin's decisions); the clock
    starts when the measured lines are written and stops at the last arrival.
    """
    deadline = time.monotonic() + timeout_s
    seen = len(counter.times)
    while True:
        publisher.send(payload)
        try:
            counter.wait_count(seen + 1, 0.2)
            break
        except MeasurementError:
            if time.monotonic() > deadline:
                raise MeasurementError("the subscriber never received a warm-up message") from None
    time.sleep(0.3)  # late warm-ups land before the count is taken
    offset = len(counter.times)
    started = time.perf_counter()
    publisher.send(payload, count)
    counter.wait_count(offset + count, timeout_s)
    last = counter.times[offset + count - 1]
    return count / max(last - started, 1e-6)
