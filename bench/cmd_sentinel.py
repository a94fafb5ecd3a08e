"""``aurora-bench sentinel``: Sentinel clients, watching a client's alerts, capacity planning.

* ``sentinel client add ID [--region R]`` creates (or resets) a client in the Auth DB and
  prints ``{"client_id", "username", "password", "region", "mqtt": {...}}``;
* ``sentinel client disable ID`` refuses its next connects;
* ``sentinel watch ID`` subscribes as that client (MQTT, its region's node) and prints
  each alert as one JSON line;
* ``sentinel plan --clients N`` sizes the seed's deployment from ``make bench`` figures;
* ``sentinel quarantine list [--client ID]`` prints what the inspection quarantined.

Credentials printed by ``client add`` are also kept (0600) under
``<state>/sentinel/clients/<id>.json`` so ``watch`` can use them.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import click

from backend.sentinel.authdb import REGIONS, AuthDb, new_password
from backend.sentinel.errors import SentinelError
from backend.sentinel.naming import alerts_topic, check_client_id
from bench.benchfile import BenchInfo, SentinelInfo, read_bench_file
from bench.cli_options import file_option, state_dir_option
from bench.cmd_quarantine import quarantine
from bench.errors import BenchError
from bench.perf.sentinel_plan import load_costs, plan_capacity
from bench.services.sentinel_client import mqtt_client

STATE_DIR = state_dir_option("State dir of the running bench (its bench.json).")


def _sentinel(state_dir: Path) -> tuple[BenchInfo, SentinelInfo]:
    info = read_bench_file(state_dir)
    if info.sentinel is None:
        raise BenchError(
            f"no Sentinel runs in {state_dir}: start one with `aurora-bench up --sentinel`"
        )
    return info, info.sentinel


def _client_id(value: str) -> str:
    try:
        return check_client_id(value)
    except SentinelError as error:
        raise click.BadParameter(str(error), param_hint="ID") from None


def _credentials_file(state_dir: Path, client_id: str) -> Path:
    return Path(state_dir) / "sentinel" / "clients" / f"{client_id}.json"


async def _auth_db(info: BenchInfo, sentinel: SentinelInfo) -> AuthDb:
    db = AuthDb.open(info.site(sentinel.origin.site).database)
    await db.start()
    return db


@click.group(name="sentinel")
def sentinel() -> None:
    """The Sentinel (seed 003): clients, watching alerts, capacity plan."""


@sentinel.group(name="client")
def client() -> None:
    """Sentinel clients in the Auth DB."""


@client.command(name="add")
@click.argument("client_id", metavar="ID")
@click.option("--region", type=click.Choice(REGIONS), default="us-east", show_default=True)
@STATE_DIR
def client_add(client_id: str, region: str, state_dir: Path) -> None:
    """Create (or reset) client ID; prints its credentials and MQTT endpoint as JSON."""
    client_id = _client_id(client_id)
    info, sentinel_info = _sentinel(state_dir)
    password = new_password()

    async def add() -> None:
        db = await _auth_db(info, sentinel_info)
        try:
            await db.add(client_id, password, region)
        finally:
            await db.aclose()

    asyncio.run(add())
    node = sentinel_info.node(region)
    result: dict[str, Any] = {
        "client_id": client_id,
        "username": client_id,
        "password": password,
        "region": region,
        "mqtt": {
            "host": node.mqtt.host,
            "port": node.mqtt.port,
            "tls": True,
            "protocol": "3.1.1",
            "topic": alerts_topic(client_id),
            "websocket": node.websocket,
            "ca": info.ca,
        },
    }
    path = _credentials_file(state_dir, client_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(result, handle)
    click.echo(json.dumps(result, indent=2))


@client.command(name="disable")
@click.argument("client_id", metavar="ID")
@STATE_DIR
def client_disable(client_id: str, state_dir: Path) -> None:
    """Disable client ID: its next connects are refused (reason ``disabled``)."""
    client_id = _client_id(client_id)
    info, sentinel_info = _sentinel(state_dir)

    async def disable() -> bool:
        db = await _auth_db(info, sentinel_info)
        try:
            return await db.set_enabled(client_id, False)
        finally:
            await db.aclose()

    if not asyncio.run(disable()):
        raise BenchError(f"no Sentinel client {client_id!r}; add it with `sentinel client add`")
    click.echo(json.dumps({"client_id": client_id, "enabled": False}))


@sentinel.command(name="watch")
@click.argument("client_id", metavar="ID")
@click.option("--password", help="The client's password (default: the one `client add` kept).")
@click.option("--region", type=click.Choice(REGIONS), help="Node to connect to.")
@click.option("--websocket", is_flag=True, help="MQTT over WebSocket (/mqtt) instead of TCP.")
@click.option("--count", type=int, default=0, help="Stop after this many alerts (0: never).")
@STATE_DIR
def watch(
    *,
    client_id: str,
    password: str | None,
    region: str | None,
    websocket: bool,
    count: int,
    state_dir: Path,
) -> None:
    """Subscribe as client ID and print each alert it receives as one JSON line."""
    client_id = _client_id(client_id)
    info, sentinel_info = _sentinel(state_dir)
    kept: dict[str, Any] = {}
    path = _credentials_file(state_dir, client_id)
    if path.exists():
        kept = json.loads(path.read_text())
    password = password or kept.get("password")
    if not password:
        raise BenchError(f"no password for {client_id!r}: give --password or run `client add`")
    node = sentinel_info.node(region or kept.get("region", "us-east"))
    host, port = node.mqtt.host, node.mqtt.port
    if websocket:
        host_port = node.websocket.split("//", 1)[1].split("/", 1)[0]
        host, _, text = host_port.rpartition(":")
        port = int(text)

    async def run() -> None:
        seen = 0
        async with mqtt_client(
            host, port, info.ca, client_id, password, websocket=websocket
        ) as mqtt:
            granted = await mqtt.subscribe(alerts_topic(client_id), qos=1)
            if any(isinstance(code, int) or code.is_failure for code in granted):
                raise BenchError(f"the Sentinel refused the subscription of {client_id}")
            click.echo(f"# watching {alerts_topic(client_id)} on {node.region}", err=True)
            async for message in mqtt.messages:
                payload = bytes(message.payload)  # type: ignore[arg-type]
                try:
                    body: Any = json.loads(payload)
                except ValueError:
                    body = payload.decode("utf-8", "replace")
                click.echo(json.dumps({"topic": str(message.topic), "payload": body}))
                seen += 1
                if count and seen >= count:
                    return

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    except Exception as error:
        if isinstance(error, BenchError):
            raise
        raise BenchError(
            f"watch {client_id}: {error!r} (wrong password or client disabled?)"
        ) from None


@sentinel.command(name="plan")
@click.option("--clients", type=int, default=1_500_000, show_default=True)
@file_option(
    "--results",
    default=Path(".bench/results.json"),
    show_default=True,
    help="Figures of `make bench` (per-connection memory, connect rate).",
)
def plan(clients: int, results: Path) -> None:
    """Nodes per region, memory and CPU for N clients, from measured per-connection costs."""
    costs = load_costs(results)
    click.echo(json.dumps(plan_capacity(clients, costs), indent=2))


sentinel.add_command(quarantine)
