"""``aurora-bench sentinel quarantine list``: what the inspection stopped, and why.

Reads the ``SENTINEL_QUARANTINE`` stream of the running bench's Sentinel as the worker
service user (its password is in ``<state>/sentinel/secrets.json``) and prints one JSON
line per quarantined alert, oldest first: sequence, client, when, the rules that matched
(``findings`` in full), size and the start of the body.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from backend.sentinel.quarantine import list_quarantined
from bench.benchfile import read_bench_file
from bench.cli_options import state_dir_option
from bench.errors import BenchError
from bench.services.sentinel_client import nats_connect
from bench.services.sentinel_config import WORKER_USER


@click.group(name="quarantine")
def quarantine() -> None:
    """Alerts the inspection pipeline quarantined (not delivered, kept for review)."""


@quarantine.command(name="list")
@click.option("--client", "client_id", help="Only this client's alerts.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@state_dir_option("State dir of the running bench (its bench.json).")
def list_command(client_id: str | None, limit: int, state_dir: Path) -> None:
    """The newest LIMIT quarantined alerts, one JSON line each, oldest first."""
    info = read_bench_file(state_dir)
    if info.sentinel is None:
        raise BenchError(
            f"no Sentinel runs in {state_dir}: start one with `aurora-bench up --sentinel`"
        )
    secrets_file = Path(state_dir) / "sentinel" / "secrets.json"
    try:
        password = json.loads(secrets_file.read_text())["worker_password"]
    except (OSError, ValueError, KeyError) as error:
        raise BenchError(
            f"cannot read the Sentinel's service secrets {secrets_file}: {error}"
        ) from None
    urls = [node.nats for node in info.sentinel.nodes]

    async def run() -> None:
        nc = await nats_connect(urls, info.ca, WORKER_USER, password, name="quarantine-list")
        try:
            entries = await list_quarantined(nc.jetstream(), client_id=client_id, limit=limit)
        finally:
            await nc.close()
        for entry in entries:
            click.echo(json.dumps(entry.as_json(), ensure_ascii=False))

    try:
        asyncio.run(run())
    except BenchError:
        raise
    except Exception as error:
        raise BenchError(f"quarantine list: {error!r}") from None
