"""``make bench``: figures measured against real services, printed and saved.

Each measurement module in this package exposes::

    async def measure(ctx: PerfContext) -> list[Figure]

and is listed in ``bench.perf.runner.MEASUREMENTS``. Every figure lands in
``.bench/results.json`` as ``{"<name>": {"value": N, "unit": "...", "baseline": N|null}}``.
"""

from bench.perf.figures import Figure, write_results

__all__ = ["Figure", "write_results"]
