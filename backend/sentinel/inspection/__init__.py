"""Sentinel inspection pipeline (seed 003): pure stages between ingress and MQTT_ALERTS.

``rules`` (the YAML rules file, schema-checked), ``patterns`` (signatures and shared IOCs),
``anomaly`` (per-publisher baselines), ``auth`` (Auth DB and callout-audit checks),
``aggregator`` (findings -> security events) and ``pipeline`` (:class:`Inspector`, all of
them in order). No module here does I/O; the Sentinel worker owns the transports.
"""

from backend.sentinel.inspection.errors import InspectionError, RulesError
from backend.sentinel.inspection.model import (
    Action,
    AlertMessage,
    AuthEvent,
    Finding,
    Inspection,
    SecurityEvent,
    Stage,
    Verdict,
)
from backend.sentinel.inspection.pipeline import Inspector, Outcome
from backend.sentinel.inspection.rules import Rules, load_rules, parse_rules

__all__ = [
    "Action",
    "AlertMessage",
    "AuthEvent",
    "Finding",
    "Inspection",
    "InspectionError",
    "Inspector",
    "Outcome",
    "Rules",
    "RulesError",
    "SecurityEvent",
    "Stage",
    "Verdict",
    "load_rules",
    "parse_rules",
]
