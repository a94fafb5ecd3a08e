"""One bench per state directory: a start refuses a directory whose bench still answers."""

from __future__ import annotations

from pathlib import Path

from bench.benchfile import read_bench_file
from bench.errors import BenchError, BenchFileError
from bench.services.process import tcp_accepts
from bench.wan.provider import WAN_FILE
from bench.wan.topology import is_wan_address


def refuse_a_running_bench(state_dir: Path) -> None:
    """A bench.json whose servers still answer means another bench owns this state dir."""
    try:
        info = read_bench_file(state_dir)
    except BenchFileError:
        return  # none, or a leftover we may overwrite
    for site in info.sites.values():
        if is_wan_address(site.mqtt.host) and not (state_dir / WAN_FILE).exists():
            # A WAN bench removes wan.json when it stops; without its namespace the address
            # goes to the default route, where a proxy may well accept any connection.
            continue
        if tcp_accepts(site.mqtt.host, site.mqtt.port, 0.3):
            raise BenchError(
                f"a bench is already running in {state_dir} (site {site.site_id} answers at "
                f"{site.mqtt.host}:{site.mqtt.port}); stop it or pick another --state-dir"
            )
