"""``aurora-bench up``: start one or two complete sites and keep them running.

Prints a status table of every endpoint, writes ``<state-dir>/bench.json`` and runs until
Ctrl-C or SIGTERM, then stops every process it started (also when the start itself is
interrupted or fails).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType

import click
from rich.console import Console
from rich.table import Table

from bench.benchfile import BENCH_FILE
from bench.cli_options import file_option, state_dir_option
from bench.errors import BenchError
from bench.services.process import log_tail
from bench.site import (
    DATABASES,
    PROVIDERS,
    BenchOptions,
    ExternalEndpoints,
    RunningBench,
    start_bench,
)
from bench.wan.conditions import parse_conditions

WATCH_INTERVAL_S = 1.0


class _StopRequested(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT while the bench is starting."""


def parse_sites(value: str) -> list[str]:
    """``"a"`` or ``"a,b"`` -> list of site ids (validated later by BenchOptions)."""
    sites = [part.strip() for part in value.split(",") if part.strip()]
    if not sites:
        raise click.BadParameter("give one or two site ids, e.g. a or a,b")
    return sites


def parse_site_env(values: tuple[str, ...], sites: list[str]) -> dict[str, dict[str, str]]:
    """``SITE:AURORA_NAME=VALUE`` (or ``AURORA_NAME=VALUE`` for every site) -> site_env."""
    site_env: dict[str, dict[str, str]] = {}
    for raw in values:
        head, equals, value = raw.partition("=")
        target, _, name = head.rpartition(":")
        if not equals or not name.startswith("AURORA_"):
            raise click.BadParameter(
                f"{raw!r}: write SITE:AURORA_NAME=VALUE or AURORA_NAME=VALUE", param_hint="--env"
            )
        for site in [target] if target else sites:
            site_env.setdefault(site, {})[name] = value
    return site_env


def parse_host_port(value: str) -> tuple[str, int]:
    """``host:port`` -> (host, port)."""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"{value!r}: write HOST:PORT", param_hint="--mqtt")
    return host, int(port)


def status_table(bench: RunningBench) -> Table:
    """Every endpoint a user or script needs: one row per endpoint, one column per site."""
    table = Table(title=f"aurora-bench: {len(bench.site_ids)} site(s) running")
    table.add_column("endpoint", style="bold")
    for site_id in bench.site_ids:
        table.add_column(f"site {site_id}", overflow="fold")
    sites = [bench.site(site_id) for site_id in bench.site_ids]
    leaves = [bench.leafnode_port(site_id) for site_id in bench.site_ids]
    rows = {
        "api": [site.api for site in sites],
        "mqtt (mTLS)": [f"mqtts://{site.mqtt.host}:{site.mqtt.port}" for site in sites],
        "mqtt (token)": [
            f"mqtts://{site.policy_mqtt.host}:{site.policy_mqtt.port}" if site.policy_mqtt else "-"
            for site in sites
        ],
        "redis": [site.redis for site in sites],
        "nats": [site.nats for site in sites],
        "leafnode (TLS)": [
            f"tls://{site.mqtt.host}:{port}" if port else "-"
            for site, port in zip(sites, leaves, strict=True)
        ],
        "database": [site.database for site in sites],
        "backend log": [str(bench.backend_log(site_id)) for site_id in bench.site_ids],
    }
    for name, values in rows.items():
        table.add_row(name, *values)
    return table


def sentinel_table(bench: RunningBench) -> Table:
    """The Sentinel's endpoints: one row per region."""
    info = bench.info.sentinel
    table = Table(title="Sentinel (seed 003): three-region NATS cluster")
    for column in ("region", "nats (TLS)", "mqtt (TLS)", "websocket", "monitor"):
        table.add_column(column, overflow="fold")
    for node in info.nodes if info else []:
        table.add_row(
            node.region,
            node.nats,
            f"mqtts://{node.mqtt.host}:{node.mqtt.port}",
            node.websocket,
            node.monitor,
        )
    return table


@click.command(name="up")
@click.option("--sites", default="a", show_default=True, help="One or two site ids: a or a,b.")
@state_dir_option("Configs, logs, PKI and bench.json go here.")
@click.option("--db", type=click.Choice(DATABASES), default="sqlite", show_default=True)
@click.option(
    "--provider",
    type=click.Choice(PROVIDERS),
    default="local",
    show_default=True,
    help="local: system binaries; docker: testcontainers; external: your servers.",
)
@click.option("--mqtt", "mqtt_addr", help="external: broker HOST:PORT (trusting the bench CA).")
@click.option("--redis", "redis_url", help="external: redis://HOST:PORT/0")
@click.option("--nats", "nats_url", help="external: nats://HOST:PORT")
@click.option("--database", "database_url", help="external: SQLAlchemy URL of the database.")
@click.option(
    "--env",
    "env",
    multiple=True,
    help="Extra backend setting, SITE:AURORA_NAME=VALUE or AURORA_NAME=VALUE (repeatable).",
)
@file_option(
    "--policy-rules",
    exists=True,
    help="Rules file of the policy service (seed 004's celine.json shape) for every site "
    "[default: the bench's own, backend/policy/data/bench-rules.json].",
)
@click.option("--no-backend", is_flag=True, help="Start the services only.")
@click.option(
    "--sentinel",
    is_flag=True,
    help="Also start the Sentinel (seed 003): a three-region NATS cluster fed by site 1.",
)
@click.option(
    "--sentinel-bridge",
    type=click.Choice(["mqtt", "websocket"]),
    default="mqtt",
    show_default=True,
    help="Origin -> Sentinel: Mosquitto's bridge, or WebSocket (/mqtt) through WAF limits.",
)
@click.option(
    "--sentinel-workers",
    type=click.IntRange(1, 16),
    default=1,
    show_default=True,
    help="Sentinel inspection workers (each owns a share of the client partitions).",
)
@file_option(
    "--sentinel-rules",
    exists=True,
    help="Inspection rules file of the Sentinel workers "
    "[default: backend/sentinel/inspection/default_rules.yaml].",
)
@click.option(
    "--wan",
    "wan",
    metavar="CONDITIONS",
    help="Each site in its own network namespace across an emulated WAN link, e.g. "
    '"delay=50ms jitter=10ms loss=1%" (root only; two sites).',
)
def up(
    *,
    sites: str,
    state_dir: Path,
    db: str,
    provider: str,
    mqtt_addr: str | None,
    redis_url: str | None,
    nats_url: str | None,
    database_url: str | None,
    env: tuple[str, ...],
    policy_rules: Path | None,
    no_backend: bool,
    sentinel: bool,
    sentinel_bridge: str,
    sentinel_workers: int,
    sentinel_rules: Path | None,
    wan: str | None,
) -> None:
    """Start services and backends for one or two sites; Ctrl-C or SIGTERM stops them."""
    site_ids = parse_sites(sites)
    external: dict[str, ExternalEndpoints] = {}
    if provider == "external":
        if len(site_ids) != 1:
            raise BenchError("provider external runs one site (give --sites with one id)")
        missing = [
            flag
            for flag, value in (("--mqtt", mqtt_addr), ("--redis", redis_url), ("--nats", nats_url))
            if not value
        ]
        if missing:
            raise BenchError(f"provider external needs {', '.join(missing)}")
        assert mqtt_addr and redis_url and nats_url
        host, port = parse_host_port(mqtt_addr)
        external[site_ids[0]] = ExternalEndpoints(host, port, redis_url, nats_url, database_url)
    site_env = parse_site_env(env, site_ids)
    if policy_rules is not None:
        for site in site_ids:
            site_env.setdefault(site, {})["AURORA_POLICY_RULES"] = str(policy_rules.absolute())
    options = BenchOptions(
        sites=site_ids,
        state_dir=state_dir,
        db=db,
        provider=provider,
        site_env=site_env,
        external=external,
        backend=not no_backend,
        sentinel=sentinel,
        sentinel_bridge=sentinel_bridge,
        sentinel_workers=sentinel_workers,
        sentinel_rules=sentinel_rules.absolute() if sentinel_rules else None,
        wan=parse_conditions(wan) if wan is not None else None,
    )
    console = Console()
    closing = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # Raising (instead of setting an Event) cannot deadlock on a lock the interrupted
        # code holds; a second signal while stopping is ignored so cleanup runs to the end.
        nonlocal closing
        if closing:
            return
        closing = True
        raise _StopRequested

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    bench: RunningBench | None = None
    try:
        began = time.monotonic()
        with console.status("starting services and backends..."):
            bench = start_bench(options)
        console.print(status_table(bench))
        if bench.sentinel is not None:
            console.print(sentinel_table(bench))
        if bench.wan is not None:
            console.print(
                f"WAN: {bench.wan.conditions.describe()} between namespaces "
                f"{bench.wan.plan.namespace(0)} and {bench.wan.plan.namespace(1)}; "
                f"load host namespace {bench.wan.loader_netns} "
                f"(all in {bench.state_dir / 'wan.json'}). The addresses above answer from "
                "this machine; cut the link with `aurora-bench wan cut`."
            )
        console.print(
            f"state dir {bench.state_dir} (bench.json: {bench.state_dir / BENCH_FILE}, "
            f"CA: {bench.pki.ca_cert}); up in {time.monotonic() - began:.1f} s "
            f"(services {bench.startup_s['services']:.1f} s, "
            f"backends {bench.startup_s['backends']:.1f} s). "
            "Ctrl-C or SIGTERM stops everything."
        )
        token = bench.site(bench.site_ids[0]).api_token
        if token:
            console.print(
                "REST API operator token (also api_token in bench.json; more with "
                "`aurora-bench token`):"
            )
            # Printed plainly, unwrapped, so it can be copied whole.
            click.echo(token)
            console.print("operator console (the token rides in the link's fragment):")
            for site_id in bench.site_ids:
                click.echo(f"  site {site_id}: {bench.site(site_id).api}/#token={token}")
        _watch(bench, console)
    except _StopRequested:
        if bench is None:
            console.print("interrupted while starting; stopped what was started")
    finally:
        closing = True
        try:
            if bench is not None:
                console.print("stopping...")
                bench.close()
                (bench.state_dir / BENCH_FILE).unlink(missing_ok=True)
                console.print("stopped")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _watch(bench: RunningBench, console: Console) -> None:
    """Run until a signal raises; say so once when a backend dies on its own."""
    reported: set[str] = set()
    while True:
        time.sleep(WATCH_INTERVAL_S)
        for site_id in bench.site_ids:
            backend = bench.backend_service(site_id)
            if backend is None or backend.running or site_id in reported:
                continue
            reported.add(site_id)
            tail = log_tail(bench.backend_log(site_id), 10)
            console.print(
                f"[red]backend of site {site_id} exited[/red]; last lines of "
                f"{bench.backend_log(site_id)}:\n{tail}"
            )
