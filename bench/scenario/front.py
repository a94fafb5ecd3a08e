"""``aurora-bench run``: a front for ``pytest.main`` with the aurora-bench plugin.

The plugin (:mod:`bench.pytest_plugin`) finds, selects (``-k``, ``-m``), orders, runs and
reports scenarios, and writes JUnit XML; this module only turns the command's options into
pytest arguments and shows the run on the console the way the bench always has: a line
per step as it is decided, the failure story, a summary table. pytest's own terminal
output is switched off so a step line is never interleaved with it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest
from rich.markup import escape

from bench.errors import BenchError
from bench.scenario.console import ConsoleProgress

#: Exit codes that differ from pytest's (0 stays "every scenario passed", 1 "some failed").
INTERRUPTED_EXIT = 130
USAGE_EXIT = 2


def pytest_args(
    paths: Iterable[Path],
    *,
    keyword: str = "",
    markers: str = "",
    junit: Path | None = None,
    reports: Sequence[Path] = (),
    listing: bool = False,
    maxfail: int | None = None,
    state_dir: Path | None = None,
    db: str | None = None,
) -> list[str]:
    """The pytest command line for ``aurora-bench run`` with these options."""
    args = [str(path) for path in paths]
    args += [
        "--scenarios-only",
        "--continue-on-collection-errors",
        "-p", "no:terminal",
        "-p", "no:cacheprovider",
        "-o", "addopts=",
        "-o", "junit_suite_name=aurora-bench scenarios",
        "-o", "asyncio_default_fixture_loop_scope=session",
        # Step lines are printed as they happen, not captured until the scenario ends.
        "--capture=no",
    ]  # fmt: skip
    if importlib.util.find_spec("pytest_timeout") is not None:
        # A scenario has its own `timeout`; pytest-timeout's must not cut it short.
        args += ["-o", "timeout=0"]
    if keyword:
        args += ["-k", keyword]
    if markers:
        args += ["-m", markers]
    if junit is not None:
        args += [f"--junitxml={junit}"]
    for report in reports:
        args += ["--scenario-report", str(report)]
    if listing:
        args += ["--collect-only"]
    if maxfail is not None:
        args += [f"--maxfail={maxfail}"]
    if state_dir is not None:
        args += ["--scenario-state-dir", str(state_dir)]
    if db is not None:
        args += ["--scenario-db", db]
    return args


class RunFront(ConsoleProgress):
    """The console of ``aurora-bench run``: a pytest plugin and the run's observer."""

    def __init__(self, *, listing: bool = False) -> None:
        super().__init__()
        self.listing = listing
        self.config: pytest.Config | None = None

    def main(self, args: list[str], *, keyword: str = "") -> int:
        """Run pytest; the command's exit code."""
        code = pytest.main(args, plugins=[self])
        if code == pytest.ExitCode.NO_TESTS_COLLECTED:
            raise BenchError("no scenario matched" + (f" -k {keyword!r}" if keyword else ""))
        if code == pytest.ExitCode.INTERRUPTED:
            return INTERRUPTED_EXIT
        if code == pytest.ExitCode.USAGE_ERROR:
            return USAGE_EXIT  # as for every other command's usage error (BenchError)
        return int(code)

    # -------------------------------------------------------------- pytest hooks

    def pytest_configure(self, config: pytest.Config) -> None:
        """Be the observer of every scenario the plugin runs."""
        from bench.pytest_plugin import OBSERVER

        self.config = config
        config.stash[OBSERVER] = self

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """A broken file: its ``file:line: problem`` lines."""
        if report.failed:
            for line in report.longreprtext.strip().splitlines():
                self.console.print(escape(line), style="red")

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """``--list``: one line per scenario, in the order they would run."""
        if not self.listing:
            return
        from bench.pytest_plugin import ScenarioItem

        for item in session.items:
            if isinstance(item, ScenarioItem):
                marks = sorted({m.name for m in item.iter_markers()} - {"scenario"})
                shown = f"  [dim]({', '.join(marks)})[/dim]" if marks else ""
                self.console.print(
                    f"{escape(str(item.loaded.path))}: {escape(item.loaded.name)}{shown}"
                )
        self.console.print(f"{len(session.items)} scenario(s)")

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Where the reports are, and the summary table."""
        from bench.pytest_plugin import RESULTS, SESSION_PLUGIN, ScenarioSession

        if self.listing:
            return
        plugin = session.config.pluginmanager.get_plugin(SESSION_PLUGIN)
        if isinstance(plugin, ScenarioSession):
            for path in plugin.written:
                self.console.print(f"report: {escape(str(path))}")
        junit = session.config.getoption("xmlpath", None)
        if junit:
            self.console.print(f"junit: {escape(str(junit))}")
        results = session.config.stash.get(RESULTS, [])
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            self.console.print("[yellow]interrupted: the reports hold what ran[/yellow]")
        if results:
            self.summary(results)
