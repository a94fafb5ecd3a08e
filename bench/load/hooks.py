"""Run-level locust hooks: options, worker reports, progress, the summary and the verdict.

* ``init_command_line_parser``: :meth:`LoadOptions.add_locust_arguments`.
* ``init``: board weights; workers attach their counters, errors and new series seconds to
  every stats report, the master keeps the latest counters and errors per worker and merges
  the series.
* ``test_start`` (master or local): a progress greenlet prints one line every
  :data:`PROGRESS_INTERVAL_S`, ends the run once every device published and drained, and
  ends it at once, failed, when a worker stops answering or reports a fatal error.
* ``quitting`` (master or local): writes the summary and series files and judges the run
  (:func:`bench.load.verdict.judge`); a failed check prints why and sets locust's
  ``process_exit_code`` to 1, so a plain ``locust -f bench/load/locustfile.py`` run fails CI
  the same way ``aurora-bench load`` does.

gevent is used because locust's runners are built on it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from bench.load.device import USER_CLASSES
from bench.load.options import LoadOptions, LoadOptionsError
from bench.load.problems import Problem, Problems, merged, reason_of
from bench.load.run import current_run
from bench.load.series import Series
from bench.load.summary import CONNECTION_EVENTS, LoadCounters, LoadSummary, summarize
from bench.load.verdict import judge

PROGRESS_INTERVAL_S = 2.0
#: Runner states in which every worker must be answering.
_ACTIVE = frozenset({"spawning", "running"})


@dataclass
class MasterState:
    """What the master (or a local runner) keeps about the run."""

    started: float = 0.0
    worker_counters: dict[str, LoadCounters] = field(default_factory=dict)
    worker_problems: dict[str, list[Problem]] = field(default_factory=dict)
    #: Problems the master saw itself (a worker that stopped answering, user exceptions).
    own: Problems = field(default_factory=Problems)
    series: Series = field(default_factory=Series)
    workers_seen: set[str] = field(default_factory=set)
    workers_lost: set[str] = field(default_factory=set)
    progress: gevent.Greenlet | None = None


def _state(environment: Environment) -> MasterState:
    state: MasterState | None = getattr(environment, "aurora_master", None)
    if state is None:
        state = MasterState()
        environment.aurora_master = state  # type: ignore[attr-defined]
    return state


def _on_init(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is None:
        return
    try:
        mix = LoadOptions.from_locust(options).board_mix
    except LoadOptionsError as error:
        # One clear line instead of a traceback from inside locust's startup.
        sys.exit(f"aurora-bench load: {error}")
    for board, user_class in USER_CLASSES.items():
        # Locust spreads users over classes by weight; weight 0 means none of that board.
        user_class.weight = mix.get(board, 0)
    runner = environment.runner
    if isinstance(runner, WorkerRunner):

        def report(client_id: str, data: dict[str, Any]) -> None:
            run = current_run(environment)
            if run is not None:
                data["aurora"] = {
                    "counters": run.counters().model_dump(),
                    "problems": [row.model_dump() for row in run.problems.rows()],
                    "series": run.series.take().model_dump(),
                }

        environment.events.report_to_master.add_listener(report)  # type: ignore[no-untyped-call]
    if isinstance(runner, MasterRunner):

        def collect(client_id: str, data: dict[str, Any]) -> None:
            report = data.get("aurora")
            if report is None:
                return
            state = _state(environment)  # a new run replaces the state: look it up each time
            state.worker_counters[client_id] = LoadCounters(**report["counters"])
            state.worker_problems[client_id] = [Problem(**row) for row in report["problems"]]
            state.series.merge(report["series"])

        def connected(client_id: str, **_: Any) -> None:
            _state(environment).workers_seen.add(client_id)

        environment.events.worker_report.add_listener(collect)  # type: ignore[no-untyped-call]
        environment.events.worker_connect.add_listener(connected)  # type: ignore[no-untyped-call]


def counters(environment: Environment) -> LoadCounters:
    """The run's totals: every worker's latest report, or the local run's own."""
    if isinstance(environment.runner, MasterRunner):
        total = LoadCounters()
        for worker in _state(environment).worker_counters.values():
            total = total.plus(worker)
        return total
    run = current_run(environment)
    return run.counters() if run is not None else LoadCounters()


def problems(environment: Environment) -> list[Problem]:
    """Every error by cause and reason: workers', the master's own, user exceptions."""
    state = _state(environment)
    run = current_run(environment)
    local = run.problems.rows() if run is not None else []
    runner = environment.runner
    # Exceptions raised in device code, as locust collected them (workers report theirs).
    exceptions = [
        Problem(
            cause="worker",
            reason=reason_of(str(row["msg"])),
            count=int(row["count"]),
            first=f"{row['msg']} at {_last_frame(row)}",
        )
        for row in (runner.exceptions if runner is not None else {}).values()
    ]
    return merged(*state.worker_problems.values(), state.own.rows(), exceptions, local)


def _last_frame(row: Any) -> str:
    lines = [line.strip() for line in str(row["traceback"]).splitlines() if line.strip()]
    return lines[-2] if len(lines) >= 2 else "(no traceback)"


def _stage_totals(environment: Environment) -> dict[str, int]:
    totals: dict[str, int] = {}
    assert environment.runner is not None
    for (name, method), entry in environment.runner.stats.entries.items():
        if name in CONNECTION_EVENTS:
            continue
        totals[method] = totals.get(method, 0) + entry.num_requests
    return totals


def _watch_workers(environment: Environment) -> None:
    """Record workers that stopped answering (missing heartbeats, or gone) as fatal."""
    runner = environment.runner
    if not isinstance(runner, MasterRunner) or runner.state not in _ACTIVE:
        return
    state = _state(environment)
    alive = {node.id for node in runner.clients.values() if node.state != "missing"}
    for worker in sorted(state.workers_seen - alive - state.workers_lost):
        state.workers_lost.add(worker)
        state.own.record(
            "worker",
            "stopped answering",
            f"worker {worker} stopped answering the master (process died?)",
            fatal=True,
        )


def _end(environment: Environment, why: str) -> None:
    print(why, flush=True)
    assert environment.runner is not None
    if getattr(environment.parsed_options, "headless", False):
        environment.runner.quit()
    else:
        environment.runner.stop()  # web UI: stop the run, keep the UI


def _progress(environment: Environment) -> None:
    """Print progress; end the run once every device is done, or at a fatal error.

    ``--run-time`` is only the safety net: device connections can take longer than the
    planned ramp, and the run should neither cut devices short nor idle after they are done.
    """
    state = _state(environment)
    runner = environment.runner
    assert runner is not None
    while True:
        gevent.sleep(PROGRESS_INTERVAL_S)
        _watch_workers(environment)
        fatal = [row for row in problems(environment) if row.fatal]
        if fatal:
            _end(environment, "stopping the run: " + "; ".join(row.render() for row in fatal))
            return
        total = counters(environment)
        target = runner.target_user_count
        if target and total.drained + total.connect_failures >= target:
            _end(environment, "all devices done")
            return
        totals = _stage_totals(environment)
        elapsed = time.monotonic() - state.started
        print(
            f"[{elapsed:5.0f} s] users {runner.user_count}"
            f"  connected {total.connected}  sent {total.sent}"
            f"  ingested {total.ingested}  lost {totals.get('LOST', 0)}"
            f"  unlocks {totals.get('UNLOCK', 0)}",
            flush=True,
        )


def _on_test_start(environment: Environment, **_: Any) -> None:
    # A new run (web UI: another "start") gets a fresh ledger and the same device ids.
    previous = current_run(environment)
    if previous is not None:
        previous.close()
        environment.aurora_load_run = None  # type: ignore[attr-defined]
    if isinstance(environment.runner, WorkerRunner):
        return
    old = _state(environment)
    if old.progress is not None:
        old.progress.kill(block=False)
    state = MasterState(started=time.monotonic(), workers_seen=old.workers_seen)
    environment.aurora_master = state  # type: ignore[attr-defined]
    state.progress = gevent.spawn(_progress, environment)


def run_summary(environment: Environment, options: LoadOptions) -> LoadSummary:
    """The summary of the run so far (stats, counters, errors, planned devices)."""
    assert environment.runner is not None
    entries = [entry.serialize() for entry in environment.runner.stats.entries.values()]
    published = [
        entry
        for entry in entries
        if entry["method"] == "MQTT" and entry["name"] not in CONNECTION_EVENTS
    ]
    starts = [float(entry["start_time"]) for entry in published if entry["num_requests"]]
    ends = [
        float(entry["last_request_timestamp"])
        for entry in published
        if entry["last_request_timestamp"]
    ]
    duration_s = (max(ends) - min(starts)) if starts and ends else options.publish_s
    planned = environment.runner.target_user_count or int(
        getattr(environment.parsed_options, "num_users", 0) or 0
    )
    return summarize(
        entries,
        counters(environment),
        max(duration_s, 1e-3),
        planned_devices=planned,
        problems=problems(environment),
    )


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _on_quitting(environment: Environment, **_: Any) -> None:
    run = current_run(environment)
    if run is not None:
        run.close()
    if environment.parsed_options is None or isinstance(environment.runner, WorkerRunner):
        return
    state = _state(environment)
    if state.progress is not None:
        state.progress.kill(block=False)
    options = LoadOptions.from_locust(environment.parsed_options)
    summary = run_summary(environment, options)
    if options.summary is not None:
        _write(options.summary, summary.model_dump_json(indent=2) + "\n")
    if options.series is not None:
        series = state.series if isinstance(environment.runner, MasterRunner) else None
        data = series.snapshot() if series is not None else _local_series(environment)
        _write(options.series, data.model_dump_json() + "\n")
    failed = [check for check in judge(summary.planned_devices, summary.counters,
                                       summary.problems) if not check.passed]  # fmt: skip
    if failed:
        for check in failed:
            print(f"FAIL {check.name}: {check.message}", file=sys.stderr, flush=True)
        environment.process_exit_code = 1


def _local_series(environment: Environment) -> Any:
    run = current_run(environment)
    return run.series.snapshot() if run is not None else Series().snapshot()


def register(environment_events: Any) -> None:
    """Attach the hooks to locust's events (called once by the locustfile)."""
    # Registered by call, not decorator: locust's EventHook is untyped.
    environment_events.init_command_line_parser.add_listener(LoadOptions.add_locust_arguments)
    environment_events.init.add_listener(_on_init)
    environment_events.test_start.add_listener(_on_test_start)
    environment_events.quitting.add_listener(_on_quitting)
