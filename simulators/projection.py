"""Battery projection of the coin-cell sentinel in virtual time (``aurora-bench battery``).

Runs the :class:`~simulators.boards.SentinelNode` model for N simulated days (pure simpy,
as fast as the CPU allows), then prices the very same message mix over MQTT and over HTTP
to compare them per message and in projected days.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import simpy

from simulators.battery import (
    CoinCell,
    Exchange,
    HttpProfile,
    Radio,
    Transport,
    exchange_for,
    http_exchange,
)
from simulators.board_names import board_name_problem
from simulators.boards import BOARDS, SentinelConfig, SentinelNode
from simulators.errors import SimulatorError
from simulators.outbox import Outgoing

DAY_S = 86_400.0
#: The claim in seed 000 this projection tests.
SEED_CLAIM = (
    "seed 000: \"MQTT's 2-byte overhead vs. HTTP's 500+ bytes is the difference between "
    'months and days of battery life"'
)


class _CountingOutbox:
    """Keeps counts and one example per topic instead of every message (months of data)."""

    def __init__(self) -> None:
        self.count = 0
        self.samples: dict[tuple[str, int], tuple[Outgoing, int]] = {}
        self.presence_changes: list[bool] = []

    def put(self, message: Outgoing) -> None:
        self.count += 1
        key = (message.topic, len(message.payload))
        sample, n = self.samples.get(key, (message, 0))
        self.samples[key] = (sample, n + 1)

    def presence(self, online: bool) -> None:
        self.presence_changes.append(online)


@dataclass(frozen=True, slots=True)
class TransportFigures:
    """Per-message cost of one transport for the simulated message mix."""

    transport: Transport
    ip_bytes_per_message: float
    on_air_bytes_per_message: float
    charge_per_message_c: float
    round_trips: int
    projected_days: float
    header_charge_c: float = 0.0


@dataclass(frozen=True, slots=True)
class BatteryProjection:
    """What the simulation and the per-message pricing say."""

    board: str
    days: float
    interval_s: float
    transport: Transport
    qos: int
    messages: int
    used_c: float
    usable_c: float
    level_pct: float
    charge_by_item: dict[str, float]
    brownout_day: float | None
    projected_days: float
    sleep_floor_days: float
    figures: dict[Transport, TransportFigures]


def project_battery(
    board: str,
    *,
    days: float = 30.0,
    interval_s: float = 60.0,
    transport: str = "mqtt",
    qos: int = 1,
    seed: int = 0,
    capacity_mah: float = 225.0,
) -> BatteryProjection:
    """Simulate ``board`` for ``days`` and price its messages over MQTT and HTTP."""
    cls = BOARDS.get(board)
    if cls is None:
        raise SimulatorError(board_name_problem(board) or f"unknown board {board!r}")
    if cls is not SentinelNode:
        raise SimulatorError(
            f"{board} is mains/USB powered; only nrf52840-sentinel runs on a coin cell"
        )
    mode = Transport(transport)
    if capacity_mah <= 0:
        raise SimulatorError(f"capacity must be > 0 mAh, got {capacity_mah}")
    config = SentinelConfig(
        interval_s=interval_s,
        transport=mode,
        telemetry_qos=qos,
        cell=CoinCell(capacity_mah=capacity_mah),
    )
    env = simpy.Environment()
    out = _CountingOutbox()
    node = SentinelNode(env, "nrf52840-sentinel-01", out, config=config, seed=seed)
    node.start()
    env.run(until=days * DAY_S)
    used = node.battery.used_c
    usable = node.battery.cell.usable_c
    elapsed_days = (node.brownout_at_s or days * DAY_S) / DAY_S
    projected = node.brownout_at_s / DAY_S if node.brownout_at_s else usable / used * days
    radio = config.radio
    messages_per_day = out.count / elapsed_days
    figures = {
        t: _figures(
            t,
            out=out,
            radio=radio,
            messages_per_day=messages_per_day,
            config=config,
            usable_c=usable,
        )
        for t in Transport
    }
    return BatteryProjection(
        board=board,
        days=days,
        interval_s=interval_s,
        transport=mode,
        qos=qos,
        messages=out.count,
        used_c=used,
        usable_c=usable,
        level_pct=node.battery.level_pct,
        charge_by_item=dict(node.charge_by_item),
        brownout_day=node.brownout_at_s / DAY_S if node.brownout_at_s else None,
        projected_days=projected,
        sleep_floor_days=usable / (radio.sleep_current_a * DAY_S),
        figures=figures,
    )


def _figures(
    transport: Transport,
    *,
    out: _CountingOutbox,
    radio: Radio,
    messages_per_day: float,
    config: SentinelConfig,
    usable_c: float,
) -> TransportFigures:
    total = sum(n for _, n in out.samples.values())
    weighted: list[tuple[Exchange, int]] = [
        (exchange_for(transport, m.topic, len(m.payload), m.qos), n)
        for m, n in out.samples.values()
    ]
    header_free = HttpProfile(request_header_bytes=0, response_bytes=0)
    headers_c = (
        sum(
            (e.charge_c(radio) - http_exchange(len(m.payload), header_free).charge_c(radio)) * n
            for (m, n), (e, _) in zip(out.samples.values(), weighted, strict=True)
        )
        / total
        if transport is Transport.HTTP
        else 0.0
    )
    ip = sum((e.bytes_up + e.bytes_down) * n for e, n in weighted) / total
    air = sum(e.on_air_bytes(radio) * n for e, n in weighted) / total
    charge = sum(e.charge_c(radio) * n for e, n in weighted) / total
    per_day = (
        radio.sleep_current_a * DAY_S
        + messages_per_day * charge
        + (DAY_S / config.interval_s)
        * (config.wake_cpu_s * radio.cpu_current_a + config.sensor_charge_c)
    )
    return TransportFigures(
        transport=transport,
        ip_bytes_per_message=ip,
        on_air_bytes_per_message=air,
        charge_per_message_c=charge,
        round_trips=max(e.round_trips for e, _ in weighted),
        header_charge_c=headers_c,
        projected_days=usable_c / per_day if per_day > 0 else math.inf,
    )


def _months(days: float) -> str:
    return f"{days:,.0f} days (~{days / 30.4:.1f} months)"


def render_projection(p: BatteryProjection) -> str:
    """The report the CLI prints: simulation result, comparison table, and why."""
    mqtt, http = p.figures[Transport.MQTT], p.figures[Transport.HTTP]
    share = {k: 100 * v / p.used_c for k, v in p.charge_by_item.items()} if p.used_c else {}
    lines = [
        f"{p.board}: {p.days:g} simulated days, wake every {p.interval_s:g} s, "
        f"{p.transport.value.upper()} QoS {p.qos}",
        f"  messages sent          {p.messages:,}",
        f"  charge used            {p.used_c:,.2f} C of {p.usable_c:,.0f} C usable "
        f"(battery {p.level_pct:.1f} % left)",
        "  where it went          "
        + ", ".join(f"{k} {share.get(k, 0):.0f} %" for k in ("sleep", "wake", "radio")),
    ]
    if p.brownout_day is not None:
        lines.append(f"  BROWN-OUT on day       {p.brownout_day:.1f}")
    else:
        lines.append(f"  projected life         {_months(p.projected_days)}")
    lines += [
        "",
        "per message (this node's message mix)      MQTT (open session)   HTTPS (new conn.)",
        f"  IP bytes, both directions                {mqtt.ip_bytes_per_message:>10,.0f}"
        f"   {http.ip_bytes_per_message:>18,.0f}",
        f"  bytes on air (802.15.4 frames + ACKs)    {mqtt.on_air_bytes_per_message:>10,.0f}"
        f"   {http.on_air_bytes_per_message:>18,.0f}",
        f"  round trips with the radio listening     {mqtt.round_trips:>10}"
        f"   {http.round_trips:>18}",
        f"  charge per message (uC)                  {mqtt.charge_per_message_c * 1e6:>10,.1f}"
        f"   {http.charge_per_message_c * 1e6:>18,.1f}",
        f"  projected life (days)                    {mqtt.projected_days:>10,.0f}"
        f"   {http.projected_days:>18,.0f}",
        "",
        "why:",
        f"  * sleep current alone caps life at {_months(p.sleep_floor_days)}: no protocol "
        "beats that.",
        f"  * HTTP pays {http.charge_per_message_c / mqtt.charge_per_message_c:.0f}x the "
        "charge per message, mostly TCP + TLS 1.3 handshake bytes, ECDHE/ECDSA time and "
        f"{http.round_trips} round trips of listening; the HTTP headers themselves cost "
        f"{http.header_charge_c * 1e6:,.0f} uC of its {http.charge_per_message_c * 1e6:,.0f} uC.",
        "  * MQTT's own cost is mostly listening for the PUBACK round trip (QoS 1); "
        "QoS 0 telemetry would cost a fraction (try --qos 0).",
        f"  * {SEED_CLAIM}.",
        f"    The model says {_months(mqtt.projected_days)} (MQTT) against "
        f"{_months(http.projected_days)} (HTTP) at this interval: the ratio holds "
        f"({mqtt.projected_days / http.projected_days:.1f}x) but 'days' needs a much "
        "shorter interval or no sleep (try --interval 10).",
    ]
    return "\n".join(lines)
