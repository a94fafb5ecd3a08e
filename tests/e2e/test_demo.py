"""``aurora-bench demo`` as a user runs it: the story plays, passes, and leaves a report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_plays_the_story_and_leaves_a_report(tmp_path: Path) -> None:
    state_dir = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "demo", "--pace", "0", "--state-dir", str(state_dir),
         "--report", str(tmp_path / "demo.json"), "--no-hold"],
        cwd=ROOT, capture_output=True, text=True, timeout=400, check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Alice badges in at the HQ lobby" in output
    assert f"report: {tmp_path / 'demo.json'}" in output
    document = json.loads((tmp_path / "demo.json").read_text())
    assert document["passed"] is True
    assert [s["name"] for s in document["scenarios"]] == ["demo"]
    assert output.index("report:") < output.index("stopping the sites")
    assert "site a console: http://127.0.0.1:" in output
    assert "#token=" in output  # the console link logs the operator in
    # Causes before effects: the analyst's alert and the operator's lockdown are told
    # before the alert reaches HQ and before the door reports lockdown.
    assert output.index("→ an analyst raises") < output.index("c2_beacon (critical) origin=b")
    assert output.index("→ an operator sends lockdown") < output.index("lock hq-door-lab lockdown")
    # Checks are printed in words, not counted.
    assert "✓ door hq-door-lab lockdown within 2s, then held for 1s" in output
