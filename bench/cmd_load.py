"""``aurora-bench load``: locust against a running site, a summary, a report and a verdict.

Runs the locustfile ``bench/load/locustfile.py`` headless with ``--workers`` local worker
processes (locust's ``--processes``), prints progress while it runs, then a summary per
stage (connect, publish -> broker ack, publish -> ingested, badge -> unlock, lost), the run
checks (every device connected, messages sent and ingested, no worker lost:
:mod:`bench.load.verdict`) and the ``--assert`` targets. Any failure is the exit code (1),
a line on the console saying why, a ``failure`` in the ``--junit`` file and a FAIL in the
``--html`` report.
"""

from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import click
import httpx

from bench.benchfile import SiteInfo, read_bench_file
from bench.cli_options import file_option
from bench.errors import BenchError
from bench.load.assertions import Target, check_all, parse_target
from bench.load.junit import write_junit
from bench.load.options import LoadOptions
from bench.load.profiles import LOAD_BADGE_UID, PROFILES
from bench.load.report import write_report
from bench.load.series import SeriesData
from bench.load.summary import LoadSummary, render_summary
from bench.load.verdict import judge
from bench.services.process import free_port

LOCUSTFILE = Path(__file__).parent / "load" / "locustfile.py"
#: The run ends when every device is done; ``--run-time`` is a safety net this much
#: beyond the plan (connections under load take longer than the planned ramp).
RUN_SAFETY_FACTOR = 3.0
RUN_SLACK_S = 30.0
API_TIMEOUT_S = 10.0
#: Seconds a remote worker gets to quit after its master ended.
WORKER_QUIT_S = 15.0


def _raise_fd_limit() -> None:
    """Each device holds a socket: lift the soft fd limit to the hard one for the workers."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _api(site: SiteInfo) -> httpx.Client:
    """A client of the site's REST API, authenticated as bench.json says (the one seam)."""
    return httpx.Client(base_url=site.api, headers=site.api_headers(), timeout=API_TIMEOUT_S)


def _grant_load_badge(site: SiteInfo) -> str | None:
    """Grant the load badge on every door so badge reads are answered by ``unlock``.

    Returns the grant id to revoke afterwards, or ``None`` (with a warning) when the API
    refuses: the run still measures everything but the unlock round trip.
    """
    try:
        with _api(site) as api:
            response = api.post(
                "/api/v1/cps/access/grants",
                json={"uid": LOAD_BADGE_UID, "device_ids": ["*"]},
            )
            response.raise_for_status()
            return str(response.json()["id"])
    except (httpx.HTTPError, KeyError, ValueError) as error:
        click.secho(
            f"warning: could not grant the load badge at {site.api} ({error}); "
            "doors will be denied and no unlock round trip is measured",
            fg="yellow",
            err=True,
        )
        return None


def _revoke(site: SiteInfo, grant_id: str) -> None:
    try:
        with _api(site) as api:
            api.delete(f"/api/v1/cps/access/grants/{grant_id}")
    except httpx.HTTPError as error:
        click.secho(f"warning: could not revoke load grant {grant_id}: {error}", err=True)


@dataclass(frozen=True, slots=True)
class RunPlan:
    """How many devices, how fast they join, in how many processes (locust's own flags)."""

    devices: int
    workers: int = 1
    spawn_rate: float | None = None
    #: Port of the master's worker channel (a free one, picked at plan time).
    master_port: int = field(default_factory=free_port)
    #: Run the workers in this network namespace (another "host"), the master here,
    #: listening for them on ``master_host`` (``--on-load-host`` of a WAN bench).
    worker_netns: str | None = None
    master_host: str | None = None

    @property
    def spawn(self) -> float:
        """Devices connected per second (default: all within a second, at most 200/s)."""
        return self.spawn_rate or float(min(self.devices, 200))


def locust_command(options: LoadOptions, plan: RunPlan) -> list[str]:
    """The headless locust command line of a run (also what the README shows)."""
    planned = plan.devices / plan.spawn + options.publish_s + options.drain_s
    run_time = math.ceil(planned * RUN_SAFETY_FACTOR + RUN_SLACK_S)
    workers = ["--processes", str(plan.workers)]
    if plan.worker_netns is not None:
        # Workers on another host join over TCP, as in a lab spreading load over machines.
        workers = ["--master", "--expect-workers", str(plan.workers)]
        workers += ["--master-bind-host", plan.master_host or "0.0.0.0"]
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        *workers,
        "--users",
        str(plan.devices),
        "--spawn-rate",
        f"{plan.spawn:g}",
        "--run-time",
        f"{run_time}s",
        "--stop-timeout",
        "5",
        "--only-summary",
        "--loglevel",
        "WARNING",
        # Master and workers talk over TCP; locust's default port 5557 may belong to
        # another run on this machine, whose master our workers would then join.
        "--master-bind-port",
        str(plan.master_port),
        "--master-port",
        str(plan.master_port),
        *options.locust_arguments(),
    ]


def worker_command(plan: RunPlan) -> list[str]:
    """One locust worker in ``plan.worker_netns`` joining the master at ``master_host``."""
    if plan.worker_netns is None or plan.master_host is None:
        raise BenchError("worker_command needs a plan with worker_netns and master_host")
    return [
        *("ip", "netns", "exec", plan.worker_netns),
        *(sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker"),
        *("--master-host", plan.master_host, "--master-port", str(plan.master_port)),
        *("--loglevel", "WARNING"),
    ]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What a run left behind: the summary and the per-second series."""

    summary: LoadSummary
    series: SeriesData
    log: Path


def run_load(options: LoadOptions, plan: RunPlan) -> LoadResult:
    """Run locust with ``options`` and ``plan``; return the summary and series.

    Raises :class:`BenchError` with what to do when the run cannot start or produced no
    summary.
    """
    site = read_bench_file(options.state_dir).site(options.site)
    out_dir = Path(options.state_dir) / "load"
    out_dir.mkdir(parents=True, exist_ok=True)
    summary_path, series_path = out_dir / "summary.json", out_dir / "series.json"
    for stale in (summary_path, series_path):
        stale.unlink(missing_ok=True)
    log_path = out_dir / "locust.log"
    run_options = replace(
        options,
        state_dir=Path(options.state_dir).absolute(),
        summary=summary_path,
        series=series_path,
    )
    command = locust_command(run_options, plan)
    doors = any(PROFILES[board].badge_weight and w for board, w in options.board_mix.items())
    grant = _grant_load_badge(site) if doors else None
    _raise_fd_limit()
    try:
        with log_path.open("wb") as log:
            # Progress lines (stdout) reach the terminal; locust's logs and tables the log.
            process = subprocess.Popen(command, stderr=log)
            remote = [
                subprocess.Popen(worker_command(plan), stdout=log, stderr=log)
                for _ in range(plan.workers if plan.worker_netns is not None else 0)
            ]
            try:
                returncode = process.wait()
            except KeyboardInterrupt:
                # Ctrl-C reached locust too: it stops the users and writes its summary.
                click.echo("interrupted: waiting for locust to write its summary", err=True)
                returncode = process.wait()
            finally:
                _end_workers(remote)
    finally:
        if grant is not None:
            _revoke(site, grant)
    if not summary_path.exists():
        raise BenchError(
            f"locust ended (exit {returncode}) without a summary; its log {log_path} ends:\n"
            f"{_tail(log_path)}"
        )
    summary = LoadSummary.model_validate_json(summary_path.read_text())
    series = (
        SeriesData.model_validate_json(series_path.read_text())
        if series_path.exists()
        else SeriesData()
    )
    return LoadResult(summary, series, log_path)


def _end_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    """Remote workers quit when their master does; stop those that did not."""
    for worker in workers:
        try:
            worker.wait(timeout=WORKER_QUIT_S)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def _load_host(state_dir: Path) -> tuple[str, str]:
    """(namespace, master address) of a WAN bench's load host, from its wan.json."""
    from bench.cmd_wan import wan_info

    info = wan_info(state_dir)
    try:
        return str(info["load_netns"]), str(info["master_address"])
    except KeyError as error:
        raise BenchError(f"{state_dir}/wan.json has no {error}: restart the WAN bench") from None


@click.command("load")
@LoadOptions.click_options
@click.option("--devices", type=click.IntRange(min=1), required=True, help="Simulated devices.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    required=True,
    help="Total messages per second of the whole fleet.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Local locust worker processes (one holds thousands of devices; one per core).",
)
@click.option(
    "--spawn-rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Devices connected per second [default: min(devices, 200)].",
)
@file_option(
    "--json",
    "json_path",
    help="Write the summary (counters, per-stage latencies, errors) as JSON.",
)
@file_option(
    "--html",
    "html_path",
    help="Write the HTML report (verdict, msg/s over time, latency per stage).",
)
@file_option(
    "--junit",
    "junit_path",
    help="Write the run checks and --assert targets as JUnit XML (one testcase each).",
)
@click.option(
    "--assert",
    "targets",
    multiple=True,
    metavar="TARGET",
    help="Pass/fail target, e.g. 'telemetry.p99<50ms', 'unlock.p99<=20ms', 'loss==0'.",
)
@click.option(
    "--on-load-host",
    is_flag=True,
    help="WAN bench (`up --wan`): run the workers on its load host, their own network "
    "namespace, joining the master here over TCP (as load machines in a lab).",
)
def load(
    *,
    devices: int,
    rate: float,
    workers: int,
    spawn_rate: float | None,
    json_path: Path | None,
    html_path: Path | None,
    junit_path: Path | None,
    targets: tuple[str, ...],
    on_load_host: bool,
    **option_values: Any,
) -> None:
    """Load a site with N simulated devices through locust and report what it sustained."""
    from rich.console import Console

    # Options and targets are checked before anything runs: a typo should not cost a run.
    options = LoadOptions.from_cli(option_values, device_rate=rate / devices)
    parsed: list[Target] = [parse_target(text) for text in targets]
    plan = RunPlan(devices=devices, workers=workers, spawn_rate=spawn_rate)
    if on_load_host:
        netns, master = _load_host(Path(options.state_dir))
        plan = replace(plan, worker_netns=netns, master_host=master)
    # Logs of CI runs are not terminals: give the table room instead of truncating it.
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(
        f"loading site {options.site}: {devices} devices, {rate:g} msg/s for "
        f"{options.publish_s:g} s, {workers} worker process(es)"
    )
    result = run_load(options, plan)
    summary = result.summary
    console.print(render_summary(summary))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(summary.model_dump(), indent=2) + "\n")
    checks = judge(devices, summary.counters, summary.problems)
    results = check_all(parsed, summary)
    for check in checks:
        if not check.passed:
            # soft_wrap: one line per failure, whole, for people and for grep in CI logs.
            console.print(
                f"[red]FAIL[/] {check.name}: {check.message}", highlight=False, soft_wrap=True
            )
    for target in results:
        console.print(
            f"[{'green' if target.passed else 'red'}]{'PASS' if target.passed else 'FAIL'}"
            f"[/] {target.message}",
            highlight=False,
            soft_wrap=True,
        )
    run_failed = any(not check.passed for check in checks)
    failed = run_failed or any(not target.passed for target in results)
    if run_failed:
        console.print(f"locust's log: {result.log}", highlight=False)
    if junit_path is not None:
        write_junit(junit_path, checks, results)
    if html_path is not None:
        write_report(html_path, summary, result.series, checks, results)
        console.print(f"report: {html_path}", highlight=False)
    if failed:
        raise SystemExit(1)
