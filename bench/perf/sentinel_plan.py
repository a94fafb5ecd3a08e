"""Capacity past one machine, on paper (DESIGN: "Capacity past one machine is planned").

Pure: per-connection costs measured by ``make bench`` (``bench.perf.sentinel``) in, a
sizing of the seed's deployment out (nodes per region, memory, CPU, reconnect storm). When
a figure is missing from ``results.json`` the DESIGN.md fact is used and the plan says so.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Seed 003: "US-EAST 50%, EU-WEST 30%, AP-SOUTH 20%".
REGION_SHARES = {"us-east": 0.5, "eu-west": 0.3, "ap-south": 0.2}
#: A node of the plan: a common 16 vCPU / 64 GiB machine, filled to 70 % (headroom for a
#: failed peer's clients and for JetStream), at most 500,000 connections (file handles).
NODE_MEMORY_GIB = 64.0
NODE_VCPUS = 16
NODE_FILL = 0.7
NODE_MAX_CONNECTIONS = 500_000
#: NATS needs three nodes per region for a replicated stream to survive one loss.
MIN_NODES_PER_REGION = 3

#: Results-file name -> (fallback value, what the fallback is).
FIGURES = {
    "sentinel.memory_per_connection": (91.0, "DESIGN.md fact: ~91 KiB per QoS 1 MQTT client"),
    "sentinel.connects_per_s": (129.0, "DESIGN.md fact: 129 connects/s in a cluster"),
    "sentinel.auth_cpu_ms_per_connect": (70.0, "argon2id m=19MiB,t=2 verify on this machine"),
}


@dataclass(frozen=True)
class Costs:
    """Per-connection costs and where each came from."""

    memory_kib: float
    connects_per_s_per_core: float
    auth_cpu_ms: float
    sources: dict[str, str]


def load_costs(results: Path) -> Costs:
    """Costs from ``results`` (``make bench``), falling back to DESIGN.md facts per figure."""
    try:
        data: dict[str, Any] = json.loads(results.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        data = {}
    values: dict[str, float] = {}
    sources: dict[str, str] = {}
    for name, (fallback, what) in FIGURES.items():
        entry = data.get(name)
        if isinstance(entry, dict) and isinstance(entry.get("value"), int | float):
            values[name] = float(entry["value"])
            sources[name] = f"measured by make bench ({results})"
        else:
            values[name] = fallback
            sources[name] = what
    return Costs(
        memory_kib=values["sentinel.memory_per_connection"],
        # The bench box has 2 cores shared by the node set; count one core per measurement.
        connects_per_s_per_core=values["sentinel.connects_per_s"],
        auth_cpu_ms=values["sentinel.auth_cpu_ms_per_connect"],
        sources=sources,
    )


def plan_capacity(clients: int, costs: Costs) -> dict[str, Any]:
    """Nodes per region, memory and CPU for ``clients`` spread as the seed says."""
    usable_kib = NODE_MEMORY_GIB * 1024 * 1024 * NODE_FILL
    per_node = int(min(NODE_MAX_CONNECTIONS, usable_kib // max(costs.memory_kib, 1.0)))
    regions: dict[str, Any] = {}
    for region, share in REGION_SHARES.items():
        region_clients = math.ceil(clients * share)
        nodes = max(MIN_NODES_PER_REGION, math.ceil(region_clients / per_node))
        memory_gib = region_clients * costs.memory_kib / 1024 / 1024
        # Reconnect storm after a node loss: its clients reconnect to the others.
        lost_clients = math.ceil(region_clients / nodes)
        broker_s = lost_clients / (costs.connects_per_s_per_core * NODE_VCPUS * (nodes - 1))
        auth_core_s = lost_clients * costs.auth_cpu_ms / 1000
        regions[region] = {
            "clients": region_clients,
            "nodes": nodes,
            "clients_per_node": math.ceil(region_clients / nodes),
            "connection_memory_gib": round(memory_gib, 1),
            "node_loss_reconnect_s": round(broker_s, 1),
            "node_loss_auth_cpu_core_s": round(auth_core_s, 1),
        }
    return {
        "clients": clients,
        "node": {
            "memory_gib": NODE_MEMORY_GIB,
            "vcpus": NODE_VCPUS,
            "fill": NODE_FILL,
            "max_connections": per_node,
        },
        "regions": regions,
        "total_nodes": sum(region["nodes"] for region in regions.values()),
        "costs": {
            "memory_per_connection_kib": costs.memory_kib,
            "connects_per_s_per_core": costs.connects_per_s_per_core,
            "auth_cpu_ms_per_connect": costs.auth_cpu_ms,
        },
        "sources": costs.sources,
        "notes": [
            "connects/s scale with cores (TLS + JetStream consumer creation per QoS 1 client)",
            "auth CPU: a full KDF check per cold connect; the callout cache answers repeats, "
            "so size callout instances for the storm: auth_cpu_core_s / acceptable seconds",
            "QoS 1 delivery: every QoS 1 subscription is a consumer of its account's one "
            "$MQTT_msgs stream, which checks all its consumers per alert and per ack; on the "
            "bench 1,000 subscriptions kept up with 600 msg/s and ~4,200 did not, so clients "
            "are spread over shard accounts (AURORA_SENTINEL_CLIENT_SHARDS, backend/sentinel/"
            "shards.py); 1.5 M clients at ~1,000 per shard need ~1,500 shards (the layout "
            "allows 256 today) — not sized here",
        ],
    }
