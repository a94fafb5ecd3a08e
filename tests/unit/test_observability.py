"""The Grafana dashboard and Prometheus scrape config shipped for the Sentinel load, and
reference only metrics that exist in the Sentinel processes' registries."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from backend.sentinel.audit import AuthMetrics
from backend.sentinel.inspection_metrics import InspectionMetrics
from backend.sentinel.worker import WorkerMetrics
from backend.sentinel.wsbridge import BridgeMetrics

SHIPPED = Path(__file__).parents[2] / "bench" / "observability"
METRIC = re.compile(r"\b(sentinel_[a-z0-9_]+)\b")
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count")}


def _exposed(registry: CollectorRegistry) -> set[str]:
    """Every sample name the registry's families can expose (with labels or not)."""
    names = set()
    for family in registry.collect():
        suffixes = SUFFIXES.get(family.type, ("",))
        names.update(family.name + suffix for suffix in suffixes)
    return names


def _known() -> set[str]:
    worker = WorkerMetrics()
    InspectionMetrics(worker.registry)
    return (
        _exposed(worker.registry)
        | _exposed(AuthMetrics().registry)
        | _exposed(BridgeMetrics().registry)
    )


def _expressions(dashboard: dict[str, object]) -> list[str]:
    panels = dashboard["panels"]
    assert isinstance(panels, list) and panels
    return [target["expr"] for panel in panels for target in panel["targets"]]


def test_every_metric_the_dashboard_queries_exists() -> None:
    dashboard = json.loads((SHIPPED / "sentinel_dashboard.json").read_text())
    used = {name for expr in _expressions(dashboard) for name in METRIC.findall(expr)}
    known = _known()
    assert used, "the dashboard queries no Sentinel metric"
    assert used <= known, f"unknown metrics: {sorted(used - known)}"
    # The metrics are all on it: inspected, verdicts, findings by stage and rule,
    # stage latency, auth decisions.
    for wanted in (
        "sentinel_inspected_total",
        "sentinel_verdicts_total",
        "sentinel_findings_total",
        "sentinel_stage_latency_seconds_bucket",
        "sentinel_auth_decisions_total",
    ):
        assert wanted in used, wanted


def test_the_check_catches_a_misspelt_metric() -> None:
    assert "sentinel_inspectd_total" not in _known()
    assert "sentinel_inspected_total" in _known()


def test_the_scrape_config_reads_the_targets_the_bench_writes() -> None:
    config = yaml.safe_load((SHIPPED / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    (sd,) = job["file_sd_configs"]
    (target_file,) = sd["files"]
    # Relative to the config file: the repository's default state dir.
    resolved = (SHIPPED / target_file).resolve()
    assert resolved == (SHIPPED.parents[1] / ".bench" / "sentinel" / "prometheus_targets.json")


def test_the_bench_writes_file_sd_targets(tmp_path: Path) -> None:
    from bench.pki import Pki
    from bench.services.sentinel import SentinelCluster

    pki = Pki.ensure(tmp_path / "pki")
    cluster = SentinelCluster(tmp_path, pki, workers=2)
    path = cluster.write_prometheus_targets()
    entries = json.loads(path.read_text())
    roles = sorted(e["labels"]["role"] for e in entries)
    assert roles == ["callout", "callout", "worker", "worker"]
    assert all(re.fullmatch(r"127\.0\.0\.1:\d+", e["targets"][0]) for e in entries)
