"""Suite-wide test policy: tier markers by folder, clean skips where a tier cannot run.

Fixtures that start benches come from the aurora-bench pytest plugin (``bench.fixtures``).
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from bench.errors import ToolMissingError
from bench.services.process import find_binary

_TIERS = {"integration": "integration", "e2e": "e2e", "fuzz": "fuzz"}


@functools.cache
def _postgres_missing() -> str | None:
    try:
        for tool in ("initdb", "postgres", "pg_isready", "createdb"):
            find_binary(tool)
    except ToolMissingError as error:
        return str(error)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests by their folder; skip postgres/docker tests where they cannot run."""
    docker_ok: bool | None = None
    for item in items:
        parts = Path(str(item.fspath)).parts
        for folder, marker in _TIERS.items():
            if folder in parts:
                item.add_marker(getattr(pytest.mark, marker))
        if item.get_closest_marker("postgres") is not None:
            postgres_missing = _postgres_missing()
            if postgres_missing:
                item.add_marker(pytest.mark.skip(reason=postgres_missing))
        if item.get_closest_marker("docker") is not None:
            if docker_ok is None:
                from bench.services.docker import docker_engine_available

                docker_ok = docker_engine_available()
            if not docker_ok:
                item.add_marker(pytest.mark.skip(reason="no Docker engine answers here"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    """Keep each phase's report on the item (``item.rep_call``), so a fixture's teardown
    can tell a failed test and keep evidence (the console tests' screenshots)."""
    report: pytest.TestReport = yield
    setattr(item, f"rep_{report.when}", report)
    return report
