"""Broker vs backend ingest: throughput (with a plain-subscriber baseline) and latency.

Figures (issue 2 "Tests and figures", issue 7):

* ``broker.throughput`` — QoS 1 messages per second from one publisher through Mosquitto to
  a plain subscriber (the C clients ``mosquitto_pub``/``mosquitto_sub`` when installed, else
  paho in this process): the baseline, the broker path without any backend work.
* ``ingest.throughput`` — the same number of telemetry messages
  from one device to entries in ``aurora:cps:telemetry``; baseline = the figure above, so
  the ratio is the share of the bare broker path the backend keeps.
* ``ingest.drain`` — readings queued at the broker while the backend was stopped, drained
  once it is back (issue 17): the worker's own capacity, no publisher on the cores.
* ``ingest.latency@<R>msg/s.p50|p99`` — publish -> stream entry at a fixed moderate rate R
  (5,000 msg/s, or a quarter of the measured burst ingest throughput when the machine
  sustains less; the rate is in the name).

Every message carries the ``aurora-trace`` property; the backend copies it into the stream
entry, so latency needs no change to the contract JSON. Timestamps are ``time.time_ns()`` of
this host on both ends (publisher and stream reader run here).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis

from backend.bus import TELEMETRY_STREAM
from backend.contract import MessageKind, TelemetryMessage, encode, topic_for
from bench.load.clients import MeasurementError, Publisher, Subscriber
from bench.load.profiles import PROFILES, DeviceTraffic
from bench.load.summary import percentile_of
from bench.load.trace import TRACE_FIELD, TRACE_PROPERTY, Trace, TraceError, decode_trace
from bench.perf.figures import Figure
from bench.perf.line_counter import LineCounter, c_clients
from bench.perf.runner import PerfContext
from bench.pki import CertPair

BASELINE_TOPIC = "aurora/perf/baseline"
#: Candidate "moderate" rates, highest first; the figure name states the one used.
MODERATE_RATES = (5_000.0, 2_000.0, 1_000.0, 500.0, 200.0, 100.0, 50.0)
DRAIN_TIMEOUT_S = 60.0


def moderate_rate(ingest_per_s: float, cap: float) -> float:
    """The highest candidate rate <= ``cap`` and <= a quarter of the measured burst ingest.

    A quarter, not a half: the burst figure is the backend alone, while during the latency
    run this process's paced Python publisher competes for the same cores; at half, queueing
    (not the ingest path) dominated the p99 on a 2-core machine.
    """
    limit = min(cap, ingest_per_s / 4)
    for rate in MODERATE_RATES:
        if rate <= limit:
            return rate
    return MODERATE_RATES[-1]


@dataclass(frozen=True, slots=True)
class Arrival:
    """One traced entry seen in the stream: read time (ns) and the entry id's ms stamp."""

    received_ns: int
    entry_ms: int


class StreamWatcher:
    """A thread reading one Redis stream from "now", keeping arrivals of one client's traces.

    The read position is fixed at construction, before anything is published, so no entry
    can slip between. Blocking XREAD releases the GIL, so the publisher thread keeps going.
    """

    def __init__(self, redis_url: str, stream: str, client: str) -> None:
        self.client = client
        self.stream = stream
        self._redis = redis.Redis.from_url(redis_url, decode_responses=True)
        newest = self._redis.xrevrange(stream, count=1)
        self._position = str(newest[0][0]) if newest else "0-0"
        self.arrivals: dict[int, Arrival] = {}
        #: Every matching entry, duplicates of one trace included (constant-trace runs).
        self.entries = 0
        self.first_ms: int | None = None
        self.last_ms: int | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch-{stream}", daemon=True)

    def __enter__(self) -> StreamWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._redis.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            batches: Any = self._redis.xread({self.stream: self._position}, count=5000, block=200)
            received_ns = time.time_ns()
            if not batches:
                continue
            found: dict[int, Arrival] = {}
            matched = 0
            first_ms: int | None = None
            last_ms = 0
            for _, entries in batches:
                for entry_id, fields in entries:
                    self._position = entry_id
                    raw = fields.get(TRACE_FIELD)
                    if raw is None:
                        continue
                    try:
                        trace = decode_trace(raw)
                    except TraceError:
                        continue
                    if trace.client == self.client:
                        entry_ms = int(entry_id.split("-")[0])
                        found.setdefault(trace.seq, Arrival(received_ns, entry_ms))
                        matched += 1
                        first_ms = entry_ms if first_ms is None else first_ms
                        last_ms = entry_ms
            if matched:
                with self._cond:
                    for seq, arrival in found.items():
                        self.arrivals.setdefault(seq, arrival)
                    self.entries += matched
                    if self.first_ms is None:
                        self.first_ms = first_ms
                    self.last_ms = last_ms
                    self._cond.notify_all()

    def wait_entries(self, count: int, timeout_s: float) -> None:
        """Block until ``count`` matching entries arrived in total (or raise)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self.entries < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise MeasurementError(
                        f"{self.entries} of {count} messages of {self.client} in "
                        f"{self.stream} after {timeout_s:g} s"
                    )
                self._cond.wait(min(remaining, 0.5))

    def wait_for(self, seqs: range, timeout_s: float) -> None:
        """Block until every sequence number in ``seqs`` arrived (or raise)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                missing = sum(1 for seq in seqs if seq not in self.arrivals)
                if not missing:
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise MeasurementError(
                        f"{missing} of {len(seqs)} messages of {self.client} not in "
                        f"{self.stream} after {timeout_s:g} s"
                    )
                self._cond.wait(min(remaining, 0.5))


class TracedDevice:
    """A device publisher that numbers its messages (trace property) from 0."""

    def __init__(self, ctx: PerfContext, device_id: str, board: str = "esp32s3") -> None:
        site = ctx.info.site(ctx.site_id)
        pair = ctx.pki.device(device_id)
        self.device_id = device_id
        self.traffic = DeviceTraffic(device_id, PROFILES[board])
        self.publisher = Publisher(
            site.mqtt.host,
            site.mqtt.port,
            ca=ctx.pki.ca_cert,
            cert=pair.cert,
            key=pair.key,
            client_id=device_id,
        )
        self.next_seq = 0
        self.sent_ns: dict[int, int] = {}
        self._telemetry_topic = topic_for(MessageKind.TELEMETRY, device_id)
        self._payload = encode(
            TelemetryMessage(device_id=device_id, metric="temperature_c", value=21.5, unit="C")
        )

    def send(self, kind: MessageKind, topic: str, payload: bytes, qos: int = 1) -> int:
        """Publish with the next trace; returns its sequence number."""
        seq = self.next_seq
        self.next_seq += 1
        sent_ns = time.time_ns()
        self.sent_ns[seq] = sent_ns
        self.publisher.publish(topic, payload, qos, Trace(self.device_id, seq, sent_ns).encode())
        return seq

    def telemetry(self, _: int = 0) -> int:
        """One in-range reading (the same payload each time: measures the path, not JSON)."""
        return self.send(MessageKind.TELEMETRY, self._telemetry_topic, self._payload)

    def status(self) -> int:
        """The device's status (registers it with the backend)."""
        return self.send(*self.traffic.status())


def tls_args(ctx: PerfContext, pair: CertPair, client_id: str) -> list[str]:
    """Connection arguments of the mosquitto C clients (MQTT v5, mTLS, QoS 1)."""
    site = ctx.info.site(ctx.site_id)
    return [
        *("-V", "mqttv5", "-h", site.mqtt.host, "-p", str(site.mqtt.port)),
        *("--cafile", str(ctx.pki.ca_cert), "--cert", str(pair.cert), "--key", str(pair.key)),
        *("-i", client_id, "-q", "1"),
    ]


class LinePublisher:
    """``mosquitto_pub -l`` fed through its stdin: one QoS 1 message per line written.

    A C publisher, so the throughput figures are the broker's and the consumer's, not a
    Python client's. It stays connected between writes, so a warm-up line can prove the
    path is open before the clock starts.
    """

    def __init__(
        self,
        ctx: PerfContext,
        pair: CertPair,
        *,
        client_id: str,
        topic: str,
        trace: str | None = None,
    ) -> None:
        tools = c_clients()
        assert tools is not None
        command = [tools[0], *tls_args(ctx, pair, client_id), "-t", topic, "-l"]
        if trace is not None:
            command += ["-D", "publish", "user-property", TRACE_PROPERTY, trace]
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


def broker_throughput(ctx: PerfContext, count: int) -> float:
    """Baseline: ``count`` QoS 1 messages, ``mosquitto_pub`` -> Mosquitto -> ``mosquitto_sub``.

    The clock starts once a warm-up message went all the way through (connections and
    subscription are not throughput) and stops at the last arrival.
    """
    probe = ctx.bench.probe_cert()
    payload = encode(
        TelemetryMessage(device_id="perf-baseline", metric="temperature_c", value=21.5, unit="C")
    )
    counter = LineCounter(
        tls_args(ctx, probe, "perf-baseline-sub"), BASELINE_TOPIC, "plain subscriber"
    )
    publisher = LinePublisher(ctx, probe, client_id="perf-baseline-pub", topic=BASELINE_TOPIC)
    try:
        # The subscription may not be in place yet: repeat the warm-up until one arrives.
        for _ in range(50):
            publisher.send(payload)
            with contextlib.suppress(MeasurementError):
                counter.wait_count(1, 0.2)
                break
        else:
            raise MeasurementError("plain subscriber never received the warm-up message")
        time.sleep(0.3)  # late warm-ups land before the count is taken
        offset = len(counter.times)
        started = time.perf_counter()
        publisher.send(payload, count)
        counter.wait_count(offset + count, DRAIN_TIMEOUT_S)
        last = counter.times[offset + count - 1]
    finally:
        publisher.close()
        counter.close()
    return count / max(last - started, 1e-6)


def broker_throughput_paho(ctx: PerfContext, count: int) -> float:
    """Fallback baseline without the C clients: paho publisher and subscriber, in-process."""
    site = ctx.info.site(ctx.site_id)
    probe = ctx.bench.probe_cert()
    args: dict[str, Any] = {
        "host": site.mqtt.host,
        "port": site.mqtt.port,
        "ca": ctx.pki.ca_cert,
        "cert": probe.cert,
        "key": probe.key,
    }
    payload = encode(
        TelemetryMessage(device_id="perf-baseline", metric="temperature_c", value=21.5, unit="C")
    )
    subscriber = Subscriber(**args, client_id="perf-baseline-sub")
    publisher = Publisher(**args, client_id="perf-baseline-pub")
    subscriber.connect()
    try:
        subscriber.subscribe(BASELINE_TOPIC, qos=1)
        publisher.connect()
        try:
            for _ in range(count):
                publisher.publish(BASELINE_TOPIC, payload, 1)
            subscriber.wait_count(count, DRAIN_TIMEOUT_S)
            publisher.wait_acked(DRAIN_TIMEOUT_S)
        finally:
            publisher.close()
    finally:
        subscriber.close()
    assert subscriber.first_at is not None and subscriber.last_at is not None
    return (count - 1) / max(subscriber.last_at - subscriber.first_at, 1e-6)


def ingest_throughput(ctx: PerfContext, count: int) -> float:
    """``count`` telemetry messages from one device to entries in the telemetry stream.

    The clock starts once a warm-up message was ingested (connection, device registration)
    and stops at the last entry, by Redis's own entry-id clock (same host). With the C
    publisher every message carries one run marker as trace; the paho fallback numbers them.
    """
    site = ctx.info.site(ctx.site_id)
    device_id = "perf-ingest-0001"
    pair = ctx.pki.device(device_id)
    payload = encode(
        TelemetryMessage(device_id=device_id, metric="temperature_c", value=21.5, unit="C")
    )
    with StreamWatcher(site.redis, TELEMETRY_STREAM, device_id) as watcher:
        if c_clients() is not None:
            marker = Trace(device_id, 0, time.time_ns()).encode()
            topic = topic_for(MessageKind.TELEMETRY, device_id)
            publisher = LinePublisher(ctx, pair, client_id=device_id, topic=topic, trace=marker)
            try:
                publisher.send(payload)
                watcher.wait_entries(1, DRAIN_TIMEOUT_S)
                started_ns = time.time_ns()
                publisher.send(payload, count)
                watcher.wait_entries(count + 1, DRAIN_TIMEOUT_S)
            finally:
                publisher.close()
        else:
            device = TracedDevice(ctx, device_id)
            device.publisher.connect()
            try:
                device.telemetry()
                watcher.wait_entries(1, DRAIN_TIMEOUT_S)
                started_ns = time.time_ns()
                for _ in range(count):
                    device.telemetry()
                watcher.wait_entries(count + 1, DRAIN_TIMEOUT_S)
            finally:
                device.publisher.close()
        assert watcher.last_ms is not None
        elapsed_s = (watcher.last_ms * 1_000_000 - started_ns) / 1e9
    return count / max(elapsed_s, 1e-3)


def ingest_drain(ctx: PerfContext, count: int) -> float:
    """``count`` QoS 1 readings queued at the broker while the backend is stopped, then
    drained by it (issue 17): the ingest's own capacity, no publisher competing for cores.

    The rate is taken between the first and the last entry of the run in the telemetry
    stream (Redis's own entry-id clock), so the backend's start-up is not in it.
    """
    site = ctx.info.site(ctx.site_id)
    device_id = "perf-drain-0001"
    pair = ctx.pki.device(device_id)
    payload = encode(
        TelemetryMessage(device_id=device_id, metric="temperature_c", value=21.5, unit="C")
    )
    topic = topic_for(MessageKind.TELEMETRY, device_id)
    marker = Trace(device_id, 0, time.time_ns()).encode()
    with StreamWatcher(site.redis, TELEMETRY_STREAM, device_id) as watcher:
        ctx.bench.stop_backend(ctx.site_id)
        try:
            if c_clients() is not None:
                publisher = LinePublisher(ctx, pair, client_id=device_id, topic=topic, trace=marker)
                try:
                    publisher.send(payload, count)
                finally:
                    # Waits until mosquitto_pub sent everything and exited: all queued.
                    publisher.close(timeout_s=max(DRAIN_TIMEOUT_S, count / 1000))
            else:
                device = TracedDevice(ctx, device_id)
                device.publisher.connect()
                try:
                    for _ in range(count):
                        device.telemetry()
                    device.publisher.wait_acked(DRAIN_TIMEOUT_S)
                finally:
                    device.publisher.close()
        finally:
            ctx.bench.start_backend(ctx.site_id)
        watcher.wait_entries(count, max(DRAIN_TIMEOUT_S, count / 1000))  # >= 1,000 msg/s
        assert watcher.first_ms is not None and watcher.last_ms is not None
        elapsed_s = (watcher.last_ms - watcher.first_ms) / 1e3
    return (count - 1) / max(elapsed_s, 1e-3)


def ingest_latency(ctx: PerfContext, rate: float, duration_s: float) -> tuple[float, float, float]:
    """Publish -> stream entry at ``rate`` for ``duration_s``: (p50 ms, p99 ms, achieved rate)."""
    site = ctx.info.site(ctx.site_id)
    device = TracedDevice(ctx, "perf-latency-0001")
    count = max(int(rate * duration_s), 1)
    with StreamWatcher(site.redis, TELEMETRY_STREAM, device.device_id) as watcher:
        device.publisher.connect()
        try:
            # Warm-up reading, ingested before the clock runs: the first sight of a device
            # registers it (a database write) and would sit in front of the measured ones.
            watcher.wait_for(range(device.telemetry(), device.next_seq), DRAIN_TIMEOUT_S)
            first = device.next_seq
            achieved = device.publisher.paced(count, rate, device.telemetry)
            seqs = range(first, device.next_seq)
            watcher.wait_for(seqs, DRAIN_TIMEOUT_S)
        finally:
            device.publisher.close()
        latencies = [
            (watcher.arrivals[seq].received_ns - device.sent_ns[seq]) / 1e6 for seq in seqs
        ]
    p50 = percentile_of(latencies, 0.50)
    p99 = percentile_of(latencies, 0.99)
    assert p50 is not None and p99 is not None
    return p50, p99, achieved


def _report_profile(ctx: PerfContext, profiler: Any) -> None:
    frames = profiler.finish()
    if profiler.problem:
        ctx.progress(f"profile: {profiler.problem}")
        return
    ctx.progress(f"profile of the backend during the ingest blast ({profiler.output}):")
    for share, frame in frames:
        ctx.progress(f"  {share:5.1f}%  {frame[:110]}")


async def measure(ctx: PerfContext) -> list[Figure]:
    """Broker baseline, ingest throughput and ratio, ingest latency at a moderate rate."""
    config = ctx.config
    c_tools = c_clients() is not None
    how = "mosquitto_pub -> mosquitto_sub" if c_tools else "paho pub+sub in one process"
    ctx.progress(f"broker baseline: {config.throughput_messages} QoS 1 messages ({how})")
    baseline = await asyncio.to_thread(
        broker_throughput if c_tools else broker_throughput_paho, ctx, config.throughput_messages
    )
    ctx.progress(f"broker baseline: {baseline:,.0f} msg/s")
    ctx.progress(f"ingest: {config.throughput_messages} telemetry messages")
    profiler = None
    if config.profile:
        from bench.perf.profile import BackendProfiler

        profiler = BackendProfiler(ctx, config.output_dir / "profile-ingest.txt")
    ingest = await asyncio.to_thread(ingest_throughput, ctx, config.throughput_messages)
    if profiler is not None:
        _report_profile(ctx, profiler)
    ctx.progress(f"ingest: {ingest:,.0f} msg/s")
    ctx.shared["ingest_msg_per_s"] = ingest
    ctx.progress(f"ingest drain: {config.drain_messages} readings queued while the backend is away")
    drain = await asyncio.to_thread(ingest_drain, ctx, config.drain_messages)
    ctx.progress(f"ingest drain: {drain:,.0f} msg/s")
    rate = moderate_rate(ingest, config.latency_rate_cap)
    ctx.progress(f"ingest latency at {rate:g} msg/s for {config.latency_duration_s:g} s")
    p50, p99, achieved = await asyncio.to_thread(
        ingest_latency, ctx, rate, config.latency_duration_s
    )
    note = f"achieved {achieved:,.0f} msg/s"
    goal: list[Figure] = []
    goal_rate = config.latency_rate_cap
    if not config.quick and rate < goal_rate:
        # Issue 2 states its latency goal at 5,000 msg/s: measure there too, whatever
        # this machine's burst ingest, and say what was achieved.
        ctx.progress(f"ingest latency at the goal rate {goal_rate:g} msg/s")
        g50, g99, g_achieved = await asyncio.to_thread(
            ingest_latency, ctx, goal_rate, config.latency_duration_s
        )
        g_note = f"goal p99 <= 20 ms; achieved {g_achieved:,.0f} msg/s"
        goal = [
            Figure(f"ingest.latency@{goal_rate:g}msg/s.p50", round(g50, 2), "ms", note=g_note),
            Figure(f"ingest.latency@{goal_rate:g}msg/s.p99", round(g99, 2), "ms", note=g_note),
        ]
    return [
        Figure("broker.throughput", round(baseline), "msg/s", note=f"plain subscriber: {how}"),
        Figure(
            "ingest.throughput",
            round(ingest),
            "msg/s",
            baseline=round(baseline),
            note="publish -> Redis stream entry; baseline: broker.throughput",
        ),
        Figure(
            "ingest.drain",
            round(drain),
            "msg/s",
            baseline=round(baseline),
            note=(
                f"{config.drain_messages:,} QoS 1 readings queued while the backend was "
                "stopped, drained by one worker; goal >= 20,000 msg/s per worker"
            ),
        ),
        Figure(f"ingest.latency@{rate:g}msg/s.p50", round(p50, 2), "ms", note=note),
        Figure(f"ingest.latency@{rate:g}msg/s.p99", round(p99, 2), "ms", note=note),
        *goal,
    ]
