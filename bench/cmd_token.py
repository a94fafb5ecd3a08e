"""``aurora-bench token``: print a JWT from the running bench's token issuer.

::

    aurora-bench token --sub svc-digital-twin --type service --scope mqtt.write
    aurora-bench token --sub alice --type user --group viewers --ttl 600
    aurora-bench token --sub ops --type user --scope aurora.operate   # REST API

The token is signed with the issuer key of ``--state-dir`` and names the issuer URL of
its bench.json, so every site of that bench accepts it (MQTT password or bearer header).
"""

from __future__ import annotations

from pathlib import Path

import click

from bench.benchfile import read_bench_file
from bench.cli_options import state_dir_option
from bench.errors import BenchError
from bench.issuer import DEFAULT_TTL_S, ISSUER_DIR, MAX_TTL_S, TOKEN_TYPES, IssuerKey


@click.command(name="token")
@click.option("--sub", required=True, help="Subject id (a service's client id, a user's name).")
@click.option(
    "--type",
    "type_",
    type=click.Choice(TOKEN_TYPES),
    default="service",
    show_default=True,
    help="Subject type the rules select on.",
)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    help="A scope (repeatable or space-separated): mqtt.read, mqtt.write, mqtt.admin, "
    "aurora.read, aurora.operate, aurora.admin.",
)
@click.option("--group", "groups", multiple=True, help="A group (repeatable), e.g. viewers.")
@click.option(
    "--ttl",
    type=click.IntRange(1, MAX_TTL_S),
    default=DEFAULT_TTL_S,
    show_default=True,
    help="Lifetime in seconds.",
)
@state_dir_option("The state dir of the running bench.")
def token(
    *,
    sub: str,
    type_: str,
    scopes: tuple[str, ...],
    groups: tuple[str, ...],
    ttl: int,
    state_dir: Path,
) -> None:
    """Print a token for SUB from the bench's issuer (one line, nothing else)."""
    info = read_bench_file(state_dir)
    if info.token_issuer is None:
        raise BenchError(f"the bench in {state_dir} runs no token issuer; restart it")
    key = IssuerKey.load(Path(info.state_dir) / ISSUER_DIR)
    click.echo(
        key.mint(
            issuer=info.token_issuer.issuer,
            audience=info.token_issuer.audience,
            sub=sub,
            type_=type_,
            scopes=[part for scope in scopes for part in scope.split()],
            groups=groups,
            ttl_s=ttl,
        )
    )
