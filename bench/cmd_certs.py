"""``aurora-bench certs``: certificates from the bench PKI for real boards and scripts."""

from __future__ import annotations

from pathlib import Path

import click

from bench.cli_options import state_dir_option
from bench.pki import Pki, Variant


@click.group(name="certs")
def certs() -> None:
    """Issue certificates from the bench PKI (``<state-dir>/pki``)."""


@certs.command(name="issue")
@click.argument("device_id")
@state_dir_option()
@click.option(
    "--variant",
    type=click.Choice([variant.value for variant in Variant]),
    help="A deliberately broken certificate for attack tests.",
)
def issue(device_id: str, state_dir: Path, variant: str | None) -> None:
    """Write DEVICE_ID's certificate and key (CN = DEVICE_ID) and print both paths.

    The same id gets the same certificate on every call; the CA is made on first use.
    """
    pki = Pki.ensure(state_dir / "pki")
    pair = pki.device(device_id) if variant is None else pki.device_variant(device_id, variant)
    click.echo(f"certificate: {pair.cert}")
    click.echo(f"key:         {pair.key}")
    click.echo(f"CA:          {pki.ca_cert}")
