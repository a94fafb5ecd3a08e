"""The capacity plan: from per-connection costs to nodes per region (pure)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.perf.sentinel_plan import Costs, load_costs, plan_capacity


def test_the_seeds_million_and_a_half_split_50_30_20() -> None:
    costs = Costs(memory_kib=91.0, connects_per_s_per_core=129.0, auth_cpu_ms=70.0, sources={})
    plan = plan_capacity(1_500_000, costs)
    regions = plan["regions"]
    assert [regions[r]["clients"] for r in ("us-east", "eu-west", "ap-south")] == [
        750_000,
        450_000,
        300_000,
    ]
    for region in regions.values():
        assert region["nodes"] >= 3  # a replicated stream survives one loss
        assert region["clients_per_node"] <= plan["node"]["max_connections"]
    assert plan["total_nodes"] == sum(r["nodes"] for r in regions.values())


def test_more_memory_per_connection_needs_more_nodes() -> None:
    light = Costs(10.0, 129.0, 70.0, {})
    heavy = Costs(400.0, 129.0, 70.0, {})
    assert (
        plan_capacity(1_500_000, heavy)["total_nodes"]
        > plan_capacity(1_500_000, light)["total_nodes"]
    )


def test_costs_come_from_results_and_say_so(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text(
        json.dumps({"sentinel.memory_per_connection": {"value": 42.0, "unit": "KiB"}})
    )
    costs = load_costs(results)
    assert costs.memory_kib == 42.0
    assert "measured" in costs.sources["sentinel.memory_per_connection"]
    assert "DESIGN" in costs.sources["sentinel.connects_per_s"]
    missing = load_costs(tmp_path / "absent.json")
    assert missing.memory_kib == 91.0
