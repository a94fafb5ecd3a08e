"""``aurora-bench load``: locust against a running site, a summary table and pass/fail targets.

Runs the locustfile ``bench/load/locustfile.py`` headless with ``--workers`` local worker
processes (locust's ``--processes``), prints progress while it runs, then a summary per
stage (connect, publish -> broker ack, publish -> ingested, badge -> unlock, lost) and the
``--assert`` targets, whose outcome is the exit code (1 when one fails) and, with
``--junit``, a JUnit XML file for CI.
"""

from __future__ import annotations

import json
import math
import re
import resource
import subprocess
import sys
from pathlib import Path

import click
import httpx

from bench.benchfile import DEFAULT_STATE_DIR, SiteInfo, read_bench_file
from bench.errors import BenchError
from bench.load.assertions import Target, check_all, parse_target, write_junit
from bench.load.profiles import LOAD_BADGE_UID, PROFILES, parse_board_mix
from bench.load.summary import LoadSummary, render_summary

LOCUSTFILE = Path(__file__).parent / "load" / "locustfile.py"
#: The run ends when every device is done; ``--run-time`` is a safety net this much
#: beyond the plan (connections under load take longer than the planned ramp).
RUN_SAFETY_FACTOR = 3.0
RUN_SLACK_S = 30.0


def _raise_fd_limit() -> None:
    """Each device holds a socket: lift the soft fd limit to the hard one for the workers."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _grant_load_badge(site: SiteInfo) -> str | None:
    """Grant the load badge on every door so badge reads are answered by ``unlock``.

    Returns the grant id to revoke afterwards, or ``None`` (with a warning) when the API
    refuses: the run still measures everything but the unlock round trip.
    """
    try:
        response = httpx.post(
            f"{site.api}/api/v1/cps/access/grants",
            json={"uid": LOAD_BADGE_UID, "device_ids": ["*"]},
            headers=site.api_headers(),
            timeout=10.0,
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
        httpx.delete(
            f"{site.api}/api/v1/cps/access/grants/{grant_id}",
            headers=site.api_headers(),
            timeout=10.0,
        )
    except httpx.HTTPError as error:
        click.secho(f"warning: could not revoke load grant {grant_id}: {error}", err=True)


def locust_command(
    *,
    state_dir: Path,
    site: str,
    devices: int,
    device_rate: float,
    duration_s: float,
    drain_s: float,
    workers: int,
    spawn_rate: float,
    messages: int,
    qos0_share: float,
    boards: str,
    summary: Path,
    html: Path | None,
    id_prefix: str = "load",
) -> list[str]:
    """The headless locust command line of a run (also what the README shows)."""
    planned = devices / spawn_rate + duration_s + drain_s
    run_time = math.ceil(planned * RUN_SAFETY_FACTOR + RUN_SLACK_S)
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--processes",
        str(workers),
        "--users",
        str(devices),
        "--spawn-rate",
        f"{spawn_rate:g}",
        "--run-time",
        f"{run_time}s",
        "--stop-timeout",
        "5",
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
        "--aurora-state-dir",
        str(state_dir),
        "--aurora-site",
        site,
        "--aurora-device-rate",
        f"{device_rate:g}",
        "--aurora-publish-s",
        f"{duration_s:g}",
        "--aurora-drain-s",
        f"{drain_s:g}",
        "--aurora-messages",
        str(messages),
        "--aurora-qos0-share",
        f"{qos0_share:g}",
        "--aurora-boards",
        boards,
        "--aurora-id-prefix",
        id_prefix,
        "--aurora-summary",
        str(summary),
    ]
    if html is not None:
        command += ["--html", str(html)]
    return command


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_load(
    *,
    state_dir: Path,
    site_id: str,
    devices: int,
    rate: float,
    duration_s: float,
    workers: int = 1,
    spawn_rate: float | None = None,
    messages: int = 0,
    qos0_share: float = 0.0,
    boards: str = "esp32s3=5,nrf52840=3,stm32f401=2",
    drain_s: float = 5.0,
    html: Path | None = None,
    id_prefix: str = "load",
) -> LoadSummary:
    """Run locust against ``site_id`` of the bench in ``state_dir``; return the summary.

    ``rate`` is the total message rate of the fleet (msg/s); each device sends
    ``rate / devices``. Raises :class:`BenchError` with what to do when the run cannot start
    or produced no summary.
    """
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", id_prefix):
        raise BenchError(f"--id-prefix {id_prefix!r}: use 1-40 of A-Z a-z 0-9 _ - (device ids)")
    try:
        mix = parse_board_mix(boards)
    except ValueError as error:
        raise BenchError(f"--boards: {error}") from None
    site = read_bench_file(state_dir).site(site_id)
    out_dir = Path(state_dir) / "load"
    out_dir.mkdir(parents=True, exist_ok=True)
    summary_path = out_dir / "summary.json"
    summary_path.unlink(missing_ok=True)
    log_path = out_dir / "locust.log"
    spawn = spawn_rate or float(min(devices, 200))
    command = locust_command(
        state_dir=Path(state_dir).absolute(),
        site=site_id,
        devices=devices,
        device_rate=rate / devices,
        duration_s=duration_s,
        drain_s=drain_s,
        workers=workers,
        spawn_rate=spawn,
        messages=messages,
        qos0_share=qos0_share,
        boards=boards,
        summary=summary_path,
        html=html,
        id_prefix=id_prefix,
    )
    doors = any(PROFILES[board].badge_weight and weight for board, weight in mix.items())
    grant = _grant_load_badge(site) if doors else None
    _raise_fd_limit()
    try:
        with log_path.open("wb") as log:
            # Progress lines (stdout) reach the terminal; locust's logs and tables the log.
            process = subprocess.Popen(command, stderr=log)
            try:
                returncode = process.wait()
            except KeyboardInterrupt:
                # Ctrl-C reached locust too: it stops the users and writes its summary.
                click.echo("interrupted: waiting for locust to write its summary", err=True)
                returncode = process.wait()
    finally:
        if grant is not None:
            _revoke(site, grant)
    if not summary_path.exists():
        raise BenchError(
            f"locust ended (exit {returncode}) without a summary; its log {log_path} ends:\n"
            f"{_tail(log_path)}"
        )
    return LoadSummary.model_validate_json(summary_path.read_text())


@click.command("load")
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_STATE_DIR,
    show_default=True,
    help="State directory of the running bench (aurora-bench up).",
)
@click.option("--site", "site_id", default="a", show_default=True, help="Site to load.")
@click.option("--devices", type=click.IntRange(min=1), required=True, help="Simulated devices.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    required=True,
    help="Total messages per second of the whole fleet.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    required=True,
    help="Seconds each device publishes (after it connected).",
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
@click.option(
    "--messages",
    type=click.IntRange(min=0),
    default=0,
    help="Stop each device after this many messages (0: no cap).",
)
@click.option(
    "--qos0-share",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of telemetry sent at QoS 0 (status and badges are always QoS 1).",
)
@click.option(
    "--boards",
    default="esp32s3=5,nrf52840=3,stm32f401=2",
    show_default=True,
    help="Board mix as board=weight pairs.",
)
@click.option(
    "--drain",
    "drain_s",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Seconds to wait for stragglers before counting them lost.",
)
@click.option(
    "--id-prefix",
    default="load",
    show_default=True,
    help="Device ids are PREFIX-<board>-<worker><n>: fixed and reproducible between runs.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the summary (counters and per-stage latencies) as JSON.",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write locust's HTML report.",
)
@click.option(
    "--junit",
    "junit_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the --assert targets as JUnit XML (one testcase each).",
)
@click.option(
    "--assert",
    "targets",
    multiple=True,
    metavar="TARGET",
    help="Pass/fail target, e.g. 'telemetry.p99<50ms', 'unlock.p99<=20ms', 'loss==0'.",
)
def load(
    *,
    state_dir: Path,
    site_id: str,
    devices: int,
    rate: float,
    duration: float,
    workers: int,
    spawn_rate: float | None,
    messages: int,
    qos0_share: float,
    boards: str,
    drain_s: float,
    id_prefix: str,
    json_path: Path | None,
    html_path: Path | None,
    junit_path: Path | None,
    targets: tuple[str, ...],
) -> None:
    """Load a site with N simulated devices through locust and report what it sustained."""
    from rich.console import Console

    # Targets are parsed before anything runs: a typo should not cost a whole load run.
    parsed: list[Target] = [parse_target(text) for text in targets]
    # Logs of CI runs are not terminals: give the table room instead of truncating it.
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(
        f"loading site {site_id}: {devices} devices, {rate:g} msg/s for {duration:g} s, "
        f"{workers} worker process(es)"
    )
    summary = run_load(
        state_dir=state_dir,
        site_id=site_id,
        devices=devices,
        rate=rate,
        duration_s=duration,
        workers=workers,
        spawn_rate=spawn_rate,
        messages=messages,
        qos0_share=qos0_share,
        boards=boards,
        drain_s=drain_s,
        html=html_path,
        id_prefix=id_prefix,
    )
    console.print(render_summary(summary))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(summary.model_dump(), indent=2) + "\n")
    results = check_all(parsed, summary)
    for result in results:
        console.print(
            f"[{'green' if result.passed else 'red'}]{'PASS' if result.passed else 'FAIL'}"
            f"[/] {result.message}"
        )
    if junit_path is not None:
        write_junit(results, junit_path)
    if any(not result.passed for result in results):
        raise SystemExit(1)
