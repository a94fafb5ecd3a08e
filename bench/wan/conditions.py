"""What the emulated WAN does to packets: ``--wan "delay=50ms jitter=10ms loss=1%"``. Pure.

:class:`LinkConditions` is parsed from the user's string and handed to the link process;
:class:`DelayLine` decides per packet when (and whether) it leaves the other end.
"""

from __future__ import annotations

import random
import re
from collections import deque
from dataclasses import dataclass, replace

from bench.errors import BenchError

#: ``delay=50ms``, ``jitter=10ms``, ``loss=1%``: one key per word, any order.
_WORD = re.compile(r"^(?P<key>[a-z]+)=(?P<number>\d+(?:\.\d+)?)(?P<unit>[a-z%]*)$")
_TIME_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
MAX_DELAY_MS = 10_000.0


class WanSpecError(BenchError):
    """The ``--wan`` string (or a scenario's ``wan`` action) cannot be understood."""


@dataclass(frozen=True)
class LinkConditions:
    """One-way delay and jitter (ms) and loss (0..1) of each direction; ``cut`` drops all."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    cut: bool = False

    def describe(self) -> str:
        """The conditions the way ``--wan`` spells them."""
        text = f"delay={self.delay_ms:g}ms jitter={self.jitter_ms:g}ms loss={self.loss * 100:g}%"
        return f"{text} (cut)" if self.cut else text

    def cut_off(self, cut: bool) -> LinkConditions:
        """The same conditions with the link cut (True) or restored (False)."""
        return replace(self, cut=cut)


def parse_conditions(text: str) -> LinkConditions:
    """``"delay=50ms jitter=10ms loss=1%"`` -> LinkConditions; WanSpecError says what is wrong.

    Units: ``us``, ``ms`` (the default) or ``s`` for delay and jitter; ``%`` (or a bare
    fraction below 1) for loss. Jitter may not exceed the delay (no negative latency).
    """
    values: dict[str, float] = {}
    for word in text.replace(",", " ").split():
        match = _WORD.fullmatch(word.strip().lower())
        if match is None:
            raise WanSpecError(f"--wan: cannot read {word!r}; write e.g. delay=50ms, loss=1%")
        key, number, unit = match["key"], float(match["number"]), match["unit"]
        if key in values:
            raise WanSpecError(f"--wan: {key} is given twice")
        if key in ("delay", "jitter"):
            if unit not in ("", *_TIME_UNITS):
                raise WanSpecError(f"--wan: {key} unit {unit!r}; use us, ms or s")
            values[key] = number * _TIME_UNITS.get(unit or "ms", 1.0)
        elif key == "loss":
            if unit not in ("", "%"):
                raise WanSpecError(f"--wan: loss unit {unit!r}; write it in % (loss=1%)")
            values[key] = number / 100 if unit == "%" else number
        else:
            raise WanSpecError(f"--wan: unknown setting {key!r}; use delay, jitter and loss")
    if not values:
        raise WanSpecError("--wan: give at least one of delay=, jitter=, loss=")
    delay, jitter, loss = (
        values.get("delay", 0.0),
        values.get("jitter", 0.0),
        values.get("loss", 0.0),
    )
    if delay > MAX_DELAY_MS:
        raise WanSpecError(f"--wan: delay {delay:g} ms is over {MAX_DELAY_MS:g} ms")
    if jitter > delay:
        raise WanSpecError(f"--wan: jitter {jitter:g} ms exceeds the delay {delay:g} ms")
    if not 0.0 <= loss <= 1.0:
        raise WanSpecError(f"--wan: loss {loss * 100:g}% is not between 0% and 100%")
    return LinkConditions(delay_ms=delay, jitter_ms=jitter, loss=loss)


class DelayLine:
    """One direction of the link: packets in, packets out when their time has come.

    Each packet is dropped with probability ``loss`` (all of them while cut), else held
    ``delay ± jitter`` (uniform, as netem's default distribution) but never overtakes the
    packet before it: netem reorders under jitter, which makes TCP look far worse than a
    real WAN path does; a FIFO line keeps the order a single path keeps.
    """

    def __init__(self, conditions: LinkConditions, rng: random.Random) -> None:
        self.conditions = conditions
        self._rng = rng
        self._queue: deque[tuple[float, bytes]] = deque()
        self._last_due = 0.0
        self.passed = 0
        self.dropped = 0

    def admit(self, packet: bytes, now: float) -> bool:
        """Queue ``packet`` received at ``now`` (seconds, monotonic); False when dropped."""
        conditions = self.conditions
        if conditions.cut or (conditions.loss and self._rng.random() < conditions.loss):
            self.dropped += 1
            return False
        delay_ms = conditions.delay_ms
        if conditions.jitter_ms:
            delay_ms += self._rng.uniform(-conditions.jitter_ms, conditions.jitter_ms)
        due = max(now + delay_ms / 1000.0, self._last_due)
        self._last_due = due
        self._queue.append((due, packet))
        return True

    def next_due(self) -> float | None:
        """When the head packet leaves (None: nothing queued)."""
        return self._queue[0][0] if self._queue else None

    def release(self, now: float) -> list[bytes]:
        """Every packet whose time has come by ``now``, in order."""
        out: list[bytes] = []
        while self._queue and self._queue[0][0] <= now:
            out.append(self._queue.popleft()[1])
        self.passed += len(out)
        return out

    def flush(self) -> int:
        """Drop everything queued (the link was cut: packets in flight are lost too)."""
        lost = len(self._queue)
        self._queue.clear()
        self.dropped += lost
        return lost
