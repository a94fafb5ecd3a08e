"""Hypothesis settings of the fuzz tier, bounded in time.

CI runs a fixed number of examples, derandomized (the same inputs every run, so a red
build is reproducible) and without an example database. Dig deeper locally with
``AURORA_FUZZ=deep`` (random seeds, 20x the examples)::

    AURORA_FUZZ=deep .venv/bin/python -m pytest tests/fuzz -k contract

Applied per test (``@fuzz(200)``) rather than as a global profile, so the other tiers keep
their own hypothesis settings when run in the same session.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

DEEP = os.environ.get("AURORA_FUZZ") == "deep"
_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


def fuzz(examples: int) -> settings:
    """Settings for a fuzz test of ``examples`` examples in CI."""
    if DEEP:
        return settings(max_examples=examples * 20, deadline=None, suppress_health_check=_HEALTH)
    return settings(
        max_examples=examples,
        deadline=None,  # a loaded CI machine must not fail on timing
        derandomize=True,
        database=None,
        suppress_health_check=_HEALTH,
    )
