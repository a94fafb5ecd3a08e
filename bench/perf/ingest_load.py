"""``python -m bench.perf.ingest_load``: one device's paced, traced telemetry, in its own process.

The ingest latency and catch-up figures run their load generator here, not in the
measuring process, so the generator's own work (TLS, framing, pacing) competes with the
backend only as another process would, and a generator that falls behind does not stamp
its backlog as latency: each message's trace carries the time it was written.

Pacing is by schedule (message i is due at ``i / rate``): a late tick is caught up in a
burst rather than lowering the rate; each trace is stamped when its message is written.
Message 0 goes first, alone, ``--warmup`` seconds ahead of the rest: the first reading of
a device registers it (a database write) and would otherwise sit in front of the measured
ones. At the end one JSON line goes to stdout:
``{"sent": N, "acked": N, "refused": N, "lost": N, "rate": achieved msg/s}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from backend.contract import MessageKind, TelemetryMessage, encode, topic_for
from backend.mqtt import FAILURE, ConnectOptions, MqttClient, MqttError, client_tls_context
from bench.load.clients import MeasurementError
from bench.load.trace import TRACE_PROPERTY, Trace
from bench.perf.runner import PerfContext


class Tally:
    """PUBACK outcomes of the messages in flight."""

    def __init__(self) -> None:
        self.acked = 0
        self.refused = 0
        self.lost = 0

    def done(self, task: asyncio.Task[int]) -> None:
        """Count one finished publish."""
        if task.cancelled() or task.exception() is not None:
            self.lost += 1
        elif task.result() >= FAILURE:
            self.refused += 1
        else:
            self.acked += 1


async def generate(args: argparse.Namespace) -> dict[str, Any]:
    """Connect, send the warm-up reading, then ``rate`` readings a second for ``seconds``."""
    options = ConnectOptions(
        host=args.host,
        port=args.port,
        client_id=args.device,
        tls=client_tls_context(args.ca, args.cert, args.key),
        keepalive_s=30,
        # One busy connection: the event loop's compiled SSL transport.
        tls_over_bio=False,
        timeout_s=30.0,
    )
    topic = topic_for(MessageKind.TELEMETRY, args.device)
    payload = encode(
        TelemetryMessage(device_id=args.device, metric="temperature_c", value=21.5, unit="C")
    )
    tally = Tally()
    tasks: set[asyncio.Task[int]] = set()

    async def publish(client: MqttClient, seq: int) -> int:
        # Stamped when the task runs: publish() writes before its first suspension (a free
        # in-flight slot and a writable transport do not wait), so the time is the write's,
        # and a generator that fell behind its schedule does not count its lag as latency.
        trace = Trace(args.device, seq, time.time_ns()).encode()
        return await client.publish(topic, payload, 1, user_properties=((TRACE_PROPERTY, trace),))

    def send(client: MqttClient, seq: int) -> None:
        task = asyncio.ensure_future(publish(client, seq))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        task.add_done_callback(tally.done)

    client = await MqttClient.connect(options)
    try:
        send(client, 0)
        await asyncio.sleep(args.warmup)
        count = int(args.rate * args.seconds)
        started = time.perf_counter()
        for index in range(count):
            delay = started + index / args.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            send(client, index + 1)
        elapsed = time.perf_counter() - started
        if tasks:
            await asyncio.wait(tasks, timeout=args.ack_timeout)
    finally:
        await client.aclose()
    return {
        "sent": count + 1,
        "acked": tally.acked,
        "refused": tally.refused,
        "lost": tally.lost + len(tasks),
        "rate": count / elapsed if elapsed > 0 else 0.0,
    }


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What the generator process reported."""

    sent: int
    acked: int
    refused: int
    lost: int
    rate: float


class LoadProcess:
    """``python -m bench.perf.ingest_load`` for one device of the site, started at once."""

    def __init__(
        self, ctx: PerfContext, device_id: str, rate: float, seconds: float, warmup_s: float = 1.0
    ) -> None:
        site = ctx.info.site(ctx.site_id)
        pair = ctx.pki.device(device_id)
        self.device_id = device_id
        self.seconds = seconds
        command = [
            *(sys.executable, "-m", "bench.perf.ingest_load"),
            *("--host", site.mqtt.host, "--port", str(site.mqtt.port)),
            *("--ca", str(ctx.pki.ca_cert), "--cert", str(pair.cert), "--key", str(pair.key)),
            *("--device", device_id, "--rate", f"{rate:g}", "--seconds", f"{seconds:g}"),
            *("--warmup", f"{warmup_s:g}"),
        ]
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def result(self, timeout_s: float) -> LoadResult:
        """Wait for the generator to finish; what it sent and had acknowledged."""
        try:
            out, err = self._process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.communicate()
            raise MeasurementError(f"load generator {self.device_id} still running") from None
        if self._process.returncode != 0:
            raise MeasurementError(f"load generator {self.device_id} failed: {err.strip()}")
        try:
            data = json.loads(out.strip().splitlines()[-1])
            return LoadResult(**data)
        except (ValueError, IndexError, TypeError) as error:
            raise MeasurementError(f"load generator said {out!r}: {error}") from None

    def kill(self) -> None:
        """Stop it (measurement abandoned)."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.communicate()


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line arguments (every one required but the pacing details)."""
    parser = argparse.ArgumentParser(prog="python -m bench.perf.ingest_load")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--device", required=True)
    parser.add_argument("--rate", type=float, required=True, help="readings per second")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--ack-timeout", type=float, default=120.0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run one generator; exit 1 (with the reason on stderr) when it could not connect."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        import uvloop

        result = uvloop.run(generate(args))
    except MqttError as error:
        print(f"ingest_load: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
