"""``make bench``: simulated devices per process, each with its own mTLS connection.

Every device is a :class:`~simulators.mqtt_link.MqttLink` — the link simulated fleets use —
with its own certificate from the bench PKI (CN = device_id), MQTT v5, TLS 1.3, its last
will and its two downward subscriptions. Figures: how many connect in one process (goal
10,000), the ramp rate (goal >= 500/s), resident memory per device, and CPU per handshake
on each side, which together say what limits the count and the rate (file descriptors,
memory, or TLS handshake CPU on a machine this bench shares with its broker).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import time
from pathlib import Path
from typing import Any

from backend.contract import MessageKind, StatusMessage, encode
from bench.fleet import raise_nofile_limit
from bench.perf.figures import Figure
from simulators.boards import EnvPresenceNode
from simulators.errors import LinkError
from simulators.firmware import build_image
from simulators.mqtt_link import MqttLink, device_tls_context

GOAL_DEVICES = 10_000
QUICK_DEVICES = 100
#: Connects in flight at once: enough to keep every handshake thread busy.
IN_FLIGHT = 256


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of ``pid`` (None when it cannot be read)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_payload(device_id: str) -> bytes:
    """The status an ESP32-S3 node would report (also its last will)."""
    board = EnvPresenceNode.board
    return encode(
        StatusMessage(
            device_type=board.device_type,
            board_family=board.board_family,
            firmware_stack=board.firmware_stack,
            firmware_version="0.1.0",
            device_id=device_id,
            firmware_hash=build_image(board.board_family, "0.1.0").sha256,
        )
    )


async def measure(ctx: Any, devices: int | None = None) -> list[Figure]:
    """Connect ``devices`` (default 10,000; 100 in quick runs) and report the figures."""
    quick = bool(getattr(getattr(ctx, "config", None), "quick", False))
    count = devices or (QUICK_DEVICES if quick else GOAL_DEVICES)
    progress = getattr(ctx, "progress", lambda _text: None)
    limit = raise_nofile_limit(count + 1024)
    site = ctx.info.site(getattr(ctx, "site_id", "a"))
    ca = Path(ctx.info.ca)
    ids = [f"perf-dev-{n:05d}" for n in range(count)]

    progress(f"devices: issuing {count} device certificates")
    started = time.perf_counter()
    pairs = await asyncio.to_thread(lambda: [ctx.pki.device(i) for i in ids])
    issue_s = time.perf_counter() - started

    progress("devices: loading TLS contexts")
    contexts = await asyncio.to_thread(
        lambda: [device_tls_context(ca, p.cert, p.key) for p in pairs]
    )
    links = [
        MqttLink(device_id, site.mqtt.host, site.mqtt.port, context, timeout_s=60)
        for device_id, context in zip(ids, contexts, strict=True)
    ]

    broker_pid = None
    bench = getattr(ctx, "bench", None)
    if bench is not None:
        with contextlib.suppress(Exception):
            broker_pid = bench.service(getattr(ctx, "site_id", "a"), "mosquitto").pid
    rss_before = _rss_kib()
    cpu_before = time.process_time()
    broker_before = _cpu_s(broker_pid)
    errors: list[str] = []
    connected: list[MqttLink] = []
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def connect(link: MqttLink) -> None:
        async with gate:
            try:
                await link.connect(lambda _k, _p: None, will=_status_payload(link.device_id))
            except LinkError as error:
                errors.append(str(error))
                return
            connected.append(link)

    progress(f"devices: connecting {count} mTLS devices (fd limit {limit})")
    started = time.perf_counter()
    await asyncio.gather(*(connect(link) for link in links))
    ramp_s = time.perf_counter() - started
    client_cpu = time.process_time() - cpu_before
    broker_after = _cpu_s(broker_pid)
    rss_per_device = (_rss_kib() - rss_before) / max(1, len(connected))

    # What holding them costs: aiomqtt wakes every client once a second (paho loop_misc),
    # so idle CPU grows with the count — the ceiling on devices per process.
    hold_s = 2.0 if quick else 5.0
    idle_before = time.process_time()
    await asyncio.sleep(hold_s)
    idle_share = (time.process_time() - idle_before) / hold_s

    # Prove the connections carry traffic: a sample publishes its status, QoS 1.
    sample = connected[: min(100, len(connected))]
    results = await asyncio.gather(
        *(link.publish(MessageKind.STATUS, _status_payload(link.device_id), 1) for link in sample),
        return_exceptions=True,
    )
    acked = sum(1 for r in results if not isinstance(r, BaseException) and r.accepted)

    progress(f"devices: closing {len(connected)} connections")
    for start in range(0, len(connected), 1000):
        await asyncio.gather(
            *(link.aclose() for link in connected[start : start + 1000]),
            return_exceptions=True,
        )

    n = len(connected)
    rate = n / ramp_s if ramp_s > 0 else 0.0
    client_ms = 1000 * client_cpu / max(1, n)
    broker_ms = (
        1000 * (broker_after - broker_before) / max(1, n)
        if broker_before is not None and broker_after is not None
        else None
    )
    cores = os.cpu_count() or 1
    ceiling = ""
    if broker_ms is not None and client_ms + broker_ms > 0:
        # Both ends of every handshake run on this machine: CPU per connect bounds the rate.
        ceiling = (
            f"; CPU ceiling {1000 * cores / (client_ms + broker_ms):.0f}/s on {cores} cores "
            f"({client_ms:.1f} ms client + {broker_ms:.1f} ms broker per mTLS connect), "
            f"one client process (GIL) at most {1000 / client_ms:.0f}/s"
        )
    note = (
        f"{n}/{count} connected in {ramp_s:.1f} s; certs issued in {issue_s:.1f} s; "
        f"{acked}/{len(sample)} sample publishes acked; fd soft limit {limit}; "
        f"holding them idle costs {100 * idle_share:.0f} % of a core{ceiling}"
    )
    if errors:
        note += f"; {len(errors)} failed, first: {errors[0][:160]}"
    figures = [
        Figure("devices.connected_per_process", n, "devices", note=note),
        Figure(
            "devices.ramp_rate",
            round(rate, 1),
            "connections/s",
            note=f"{IN_FLIGHT} connects in flight{ceiling}",
        ),
        Figure("devices.rss_per_device", round(rss_per_device, 1), "KiB"),
        Figure("devices.client_cpu_per_connect", round(client_ms, 2), "ms"),
        Figure("devices.idle_cpu_holding", round(100 * idle_share, 1), "% of a core"),
    ]
    if broker_ms is not None:
        figures.append(Figure("devices.broker_cpu_per_connect", round(broker_ms, 2), "ms"))
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if n < count and soft <= count:
        figures[0] = Figure(
            figures[0].name, n, "devices", note=note + f"; limited by RLIMIT_NOFILE {soft}"
        )
    return figures
