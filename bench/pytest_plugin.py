"""pytest plugin of aurora-bench (entry point ``pytest11``): bench fixtures and scenarios.

* Scenario files are collected as test items, one per file, marked ``scenario`` plus the
  file's own ``markers``; so ``-k``, ``-m``, ``-x``, ``--maxfail`` and ``--junitxml`` come
  from pytest. A scenario file is a ``.yaml``/``.yml`` file with a top-level ``steps:`` key,
  in any folder (fleet specs and other YAML are left alone); a file named on the command
  line is always read. A broken file is a collection error that reads
  ``file:line: what is wrong``; a failed scenario reports expected vs observed with the
  timeline around it.
* ``--scenario-report FILE.html|FILE.json`` (repeatable) writes the run's report when the
  session ends, also when it was interrupted (Ctrl-C): what ran is in it.
* Scenario items that need the same sites and settings share one bench (items are
  reordered so they run back to back); it is stopped when the session ends.
* Fixtures for tests written in Python: those of :mod:`bench.fixtures` (``bench_one``,
  ``bench_two``, ``bench_factory``, ...), plus ``bench_site`` (the
  :class:`~bench.benchfile.SiteInfo` of ``bench_one``'s site ``a``), ``bench_sites``
  (``bench_two``'s sites by id) and ``fleet`` (start simulated nodes on a running bench).

``aurora-bench run`` is a front for this plugin (:mod:`bench.cmd_scenario`).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bench.benchfile import SiteInfo
from bench.fixtures import *  # noqa: F403  (fixtures are found by name)
from bench.scenario.loader import (
    LoadedScenario,
    ScenarioLoadError,
    load_scenario,
    looks_like_scenario,
    scenario_data_error,
)
from bench.scenario.results import ScenarioResult, failure_text
from bench.site import RunningBench

SCENARIO_MARKER = "scenario"
_POOL = pytest.StashKey[Any]()
_FAILED = pytest.StashKey[bool]()
#: Every scenario result of the session, in run order (broken files included).
RESULTS = pytest.StashKey[list[ScenarioResult]]()
#: An observer (:class:`bench.scenario.runner.RunObserver`) told about every step.
OBSERVER = pytest.StashKey[Any]()
#: Name of the :class:`ScenarioSession` plugin of a session.
SESSION_PLUGIN = "aurora-bench-scenario-session"
#: How long an interrupted scenario may take to clean up (restart services, revoke grants).
CLEANUP_AFTER_INTERRUPT_S = 60.0


def pytest_addoption(parser: pytest.Parser) -> None:
    """The plugin's options (group ``aurora-bench``)."""
    group = parser.getgroup("aurora-bench", "aurora-bench scenarios")
    group.addoption(
        "--scenario-report",
        action="append",
        default=[],
        metavar="FILE",
        help="write a scenario report: FILE.html or FILE.json (repeatable)",
    )
    group.addoption(
        "--scenario-state-dir",
        metavar="DIR",
        help="state and server logs of the benches scenarios run on (default: a temp dir, "
        "removed unless a scenario failed)",
    )
    group.addoption(
        "--scenario-db",
        choices=["sqlite", "postgres"],
        help="database of the scenarios' sites (default: AURORA_TEST_DB or sqlite)",
    )
    group.addoption(
        "--scenarios-only",
        action="store_true",
        help="collect scenario files only, no Python tests",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the scenario marker (for suites without aurora-bench's pyproject)."""
    config.addinivalue_line(
        "markers", f"{SCENARIO_MARKER}: a scenario file collected by the aurora-bench plugin"
    )
    config.stash[RESULTS] = []
    config.pluginmanager.register(ScenarioSession(config), SESSION_PLUGIN)
    from bench.scenario.report import REPORT_SUFFIXES

    for report in config.getoption("scenario_report") or []:
        if Path(report).suffix.lower() not in REPORT_SUFFIXES:
            raise pytest.UsageError(
                f"--scenario-report {report}: use a name ending in .html or .json"
            )


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the bench scenarios shared; keep its logs only when a scenario failed."""
    pool = config.stash.get(_POOL, None)
    if pool is not None:
        config.stash[_POOL] = None
        pool.close()
        keep = config.stash.get(_FAILED, False) or config.getoption("scenario_state_dir")
        if not keep:
            shutil.rmtree(pool.root, ignore_errors=True)


def is_scenario_file(path: Path) -> bool:
    """A YAML file with a top-level ``steps:`` key, in any folder."""
    return looks_like_scenario(path)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With ``--scenarios-only``, Python test files are not collected."""
    if config.getoption("scenarios_only") and collection_path.suffix == ".py":
        return True
    return None


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """Collect scenario files (and any YAML file named on the command line)."""
    named = parent.session.isinitpath(file_path) and file_path.suffix in (".yaml", ".yml")
    if named or is_scenario_file(file_path):
        collector: ScenarioFile = ScenarioFile.from_parent(parent, path=file_path)
        return collector
    return None


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Run scenarios that can share a bench back to back (other tests keep their places)."""
    slots = [index for index, item in enumerate(items) if isinstance(item, ScenarioItem)]
    if not slots:
        return
    from bench.scenario.runner import group_by_bench  # heavy: only when scenarios are run

    scenarios = [item for item in items if isinstance(item, ScenarioItem)]
    ordered = group_by_bench(scenarios, lambda item: item.loaded.scenario)
    for index, item in zip(slots, ordered, strict=True):
        items[index] = item


class ScenarioSession:
    """Collects every scenario result of a session and writes ``--scenario-report``.

    Registered by :func:`pytest_configure`; a broken scenario file (a collection error)
    becomes a failed result, so a report never hides it.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.written: list[Path] = []

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """A broken scenario file is a failed result in the reports too."""
        if report.failed and report.nodeid.endswith((".yaml", ".yml")):
            path = report.nodeid.split("::", 1)[0]
            self.config.stash[RESULTS].append(
                ScenarioResult(Path(path).stem, path, error=report.longreprtext.strip())
            )

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Write the reports: every scenario that ran, also after Ctrl-C."""
        reports = self.config.getoption("scenario_report") or []
        results = self.config.stash[RESULTS]
        if not reports or self.config.getoption("collectonly"):
            return
        from bench.errors import BenchError
        from bench.scenario.report import write_report

        for report in reports:
            try:
                self.written.append(write_report(report, results))
            except BenchError as error:
                raise pytest.UsageError(str(error)) from None


class ScenarioFile(pytest.File):
    """One scenario file: one item, or a collection error naming file and line."""

    def collect(self) -> Iterable[pytest.Item]:
        """Load and validate the file."""
        loaded = load_scenario(self.path)
        item: ScenarioItem = ScenarioItem.from_parent(
            self, name=_item_name(loaded.name), loaded=loaded
        )
        item.add_marker(SCENARIO_MARKER)
        registered = _registered_markers(self.config)
        for marker in loaded.scenario.markers:
            if marker not in registered and self.config.option.strict_markers:
                raise scenario_data_error(
                    str(self.path),
                    f"marker {marker!r} is not registered with pytest (--strict-markers)",
                )
            item.add_marker(marker)
        yield item

    def repr_failure(  # type: ignore[override]
        self, excinfo: pytest.ExceptionInfo[BaseException]
    ) -> str:
        """A broken scenario file reads ``file:line: problem``, not a traceback."""
        if isinstance(excinfo.value, ScenarioLoadError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))


class ScenarioFailed(Exception):
    """A scenario ran and did not pass."""

    def __init__(self, result: ScenarioResult, state_dir: Path | None = None) -> None:
        self.result = result
        self.state_dir = state_dir
        super().__init__(result.name)


class ScenarioItem(pytest.Item):
    """Runs one scenario against a (shared) bench."""

    def __init__(self, *, loaded: LoadedScenario, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loaded = loaded
        self.result: ScenarioResult | None = None

    def runtest(self) -> None:
        """Start or reuse a bench, play the scenario, fail with its story."""
        from bench.errors import BenchError
        from bench.scenario.runner import run_scenario

        pool = _pool(self.config)
        if self.loaded.scenario.wan is not None:
            from bench.wan.topology import support_problem

            problem = support_problem()
            if problem is not None:
                pytest.skip(f"scenario across a WAN: {problem}")
        try:
            bench: RunningBench = pool.acquire(self.loaded.scenario)
        except BenchError as error:
            self._record(
                ScenarioResult(
                    self.loaded.name, str(self.loaded.path), error=f"bench did not start: {error}"
                )
            )
            raise
        observer = self.config.stash.get(OBSERVER, None)
        partial: list[ScenarioResult] = []
        try:
            result = _in_own_loop(
                lambda: run_scenario(self.loaded, bench, observer, partial=partial.append)
            )
        except KeyboardInterrupt:
            if partial:
                self._record(partial[0])
            raise
        self._record(result)
        # The same properties as the JUnit file of `aurora-bench run`.
        self.user_properties.extend((name, f"{value:.6f}") for name, value in result.latencies())
        if not result.passed:
            self.config.stash[_FAILED] = True
            raise ScenarioFailed(result, bench.state_dir)

    def _record(self, result: ScenarioResult) -> None:
        self.result = result
        self.config.stash[RESULTS].append(result)

    def repr_failure(  # type: ignore[override]
        self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None
    ) -> str:
        """Expected vs observed with the timeline around it."""
        if isinstance(excinfo.value, ScenarioFailed):
            logs = excinfo.value.state_dir
            where = f"\n  bench state and server logs: {logs}" if logs else ""
            return failure_text(excinfo.value.result) + where
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        """Where the item comes from, for pytest's report lines."""
        return self.path, None, f"scenario: {self.loaded.name}"


def _pool(config: pytest.Config) -> Any:
    from bench.fixtures import database_for_tests
    from bench.scenario.runner import BenchPool

    pool = config.stash.get(_POOL, None)
    if pool is None:
        state_dir = config.getoption("scenario_state_dir")
        root = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="aurora-scenarios-"))
        # Same database switch as the fixtures, so `make test-postgres` covers the suite.
        pool = BenchPool(root, db=config.getoption("scenario_db") or database_for_tests())
        config.stash[_POOL] = pool
    return pool


def _item_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "scenario"


def _registered_markers(config: pytest.Config) -> set[str]:
    lines = config.getini("markers")
    return {str(line).split(":", 1)[0].split("(", 1)[0].strip() for line in lines}


def _in_own_loop(make: Callable[[], Coroutine[Any, Any, ScenarioResult]]) -> ScenarioResult:
    # The scenario gets its own event loop in its own thread: it cannot disturb (or be
    # disturbed by) the loop pytest-asyncio keeps for the session. Ctrl-C arrives in the
    # main thread: the scenario is cancelled (its cleanup runs) before it is passed on.
    # An Event, not Thread.join: a join interrupted by Ctrl-C can report a live thread
    # as finished (CPython 3.11).
    outcome: dict[str, Any] = {}
    done = threading.Event()
    loop = asyncio.new_event_loop()
    task = loop.create_task(make())

    def target() -> None:
        asyncio.set_event_loop(loop)
        try:
            outcome["result"] = loop.run_until_complete(task)
        except BaseException as error:
            outcome["error"] = error
        finally:
            loop.close()
            done.set()

    threading.Thread(target=target, name="aurora-scenario", daemon=True).start()
    try:
        done.wait()
    except KeyboardInterrupt:
        loop.call_soon_threadsafe(task.cancel)
        done.wait(timeout=CLEANUP_AFTER_INTERRUPT_S)
        raise
    if "error" in outcome:
        raise outcome["error"]
    result: ScenarioResult = outcome["result"]
    return result


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def bench_site(bench_one: RunningBench) -> SiteInfo:
    """Site ``a`` of the shared one-site bench (its API, MQTT, Redis and NATS endpoints)."""
    return bench_one.info.site("a")


@pytest.fixture(scope="session")
def bench_sites(bench_two: RunningBench) -> dict[str, SiteInfo]:
    """Sites ``a`` and ``b`` of the shared two-site bench, by id."""
    return dict(bench_two.info.sites)


@pytest_asyncio.fixture
async def fleet(bench_one: RunningBench) -> AsyncIterator[Any]:
    """Start simulated nodes on a running bench; every fleet is stopped after the test.

    ``await fleet([{"id": "door-01", "board": "stm32f401-door"}], bench=bench_one)``
    returns a :class:`~bench.scenario.fleet_adapter.SimulatedFleet` whose nodes are
    connected; ``timeline`` (optional) receives their commands and lock changes.
    """
    from bench.scenario.fleet_adapter import start_fleet
    from bench.scenario.schema import Scenario
    from bench.scenario.timeline import Timeline

    started: list[Any] = []

    async def make(
        nodes: list[dict[str, Any]],
        bench: RunningBench | None = None,
        timeline: Timeline | None = None,
    ) -> Any:
        target = bench or bench_one
        scenario = Scenario.model_validate(
            {
                "name": "fleet fixture",
                "sites": {site: {} for site in target.info.sites},
                "fleet": nodes,
                "steps": [{"name": "none"}],
            }
        )
        running = await start_fleet(scenario, target, timeline or Timeline())
        started.append(running)
        return running

    try:
        yield make
    finally:
        for running in reversed(started):
            await running.aclose()
