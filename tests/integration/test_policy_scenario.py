"""``scenarios/policy/policy_jwt.yaml`` is not vacuous: against a rules file with the
seed's deny rule and the pipeline service's rule taken out, ``aurora-bench run`` fails
exactly the steps that hold the service to those two rules, and nothing else."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "policy" / "policy_jwt.yaml"
RULES = ROOT / "backend" / "policy" / "data" / "bench-rules.json"


def mutated_rules(rules: dict[str, Any]) -> dict[str, Any]:
    """The bench's rules without the deny on critical alerts and the svc-pipelines allow."""
    acl = rules["aurora"]["mqtt"]["acl"]
    kept = [
        rule
        for rule in acl["rules"]
        if rule.get("description")
        not in {"seed 004: deny specific topic", "seed 004: pipeline service status updates"}
    ]
    assert len(kept) == len(acl["rules"]) - 2, "the rules this test removes were renamed"
    acl["rules"] = kept
    return rules


def test_policy_jwt_fails_against_mutated_rules(tmp_path: Path) -> None:
    rules = tmp_path / "mutated-rules.json"
    rules.write_text(json.dumps(mutated_rules(json.loads(RULES.read_text()))))
    scenario = yaml.safe_load(SCENARIO.read_text())
    scenario["sites"]["a"]["settings"]["policy_rules"] = str(rules)
    copy = tmp_path / "policy_jwt_mutated.yaml"
    copy.write_text(yaml.safe_dump(scenario, sort_keys=False))
    report = tmp_path / "report.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "run", str(copy), "--report", str(report),
         "--state-dir", str(tmp_path / "state")],
        capture_output=True, text=True, timeout=300, check=False, cwd=ROOT,
    )  # fmt: skip
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    [result] = json.loads(report.read_text())["scenarios"]
    failed = {
        step["name"]: [
            (e["description"], e["observed"])
            for e in step["expectations"]
            if e["verdict"] == "failed"
        ]
        for step in result["steps"]
        if not step["passed"]
    }
    assert failed == {
        "svc-pipelines publishes pipeline status": [
            (
                "publish of pipelines delivered to admin within 2s",
                "PUBACK 135 (not authorized)",
            )
        ],
        "a deny rule beats the group allow (viewers may not subscribe to critical alerts)": [
            (
                "subscription of viewer refused",
                "reason code 1 (granted QoS 1)",
            )
        ],
    }
    assert len(result["steps"]) == len(scenario["steps"])  # every step ran
