"""The one retry backoff of the project: capped exponential delays with optional jitter.

Pure and dependency-free (standard library only) so that every package may use it:
``simulators`` and ``hardware`` import only ``backend.contract`` and this module (the
import-linter contracts in ``pyproject.toml`` keep it that way; docs/architecture.md).

A :class:`Backoff` is a frozen policy; each retry loop takes its own iterator of delays
and starts a fresh one when an attempt worked::

    delays = backoff.delays()
    while True:
        try:
            await connect()
        except OSError:
            await asyncio.sleep(next(delays))
            continue
        delays = backoff.delays()  # worked: start small again
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential retry delays: ``initial_s``, ``initial_s * factor``, ... up to ``max_s``.

    ``jitter`` spreads each delay by up to that fraction either way, so a fleet that lost
    its broker together does not reconnect in lockstep. Invalid parameters raise
    ``ValueError`` at construction, not in the middle of an outage.
    """

    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.max_s:
            raise ValueError(
                f"need 0 < initial_s <= max_s, got initial_s={self.initial_s}, max_s={self.max_s}"
            )
        if self.factor < 1:
            raise ValueError(f"factor must be >= 1 (delays never shrink), got {self.factor}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter}")

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """Successive waits, each within ``+-jitter`` of the capped exponential value.

        ``rng`` makes the jitter reproducible (a simulated node seeds it with its id);
        without one a private generator is used.
        """
        source = rng if rng is not None else random.Random()
        delay = self.initial_s
        while True:
            if self.jitter:
                yield delay * (1 + self.jitter * (2 * source.random() - 1))
            else:
                yield delay
            delay = min(self.max_s, delay * self.factor)
