"""Pass/fail targets of a load run (``--assert "telemetry.p99<50ms"``) and their JUnit XML.

Grammar::

    TARGET   := [STAGE ":"] NAME "." STAT  OP  NUMBER [UNIT]
              | TOTAL  OP  NUMBER [UNIT]
    STAGE    := connect | publish | ingest | unlock
    STAT     := p50 | p95 | p99 | max | avg | rate | count | failures
    TOTAL    := loss | loss_pct | duplicates | connected | connect_failures
              | sent_rate | ingested_rate
    OP       := < | <= | > | >= | ==
    UNIT     := ms | s | % | /s

Without a stage, ``unlock`` means the badge -> unlock round trip and any other name the
end-to-end ``ingest`` stage, so ``telemetry.p99<50ms`` is "publish -> Redis stream entry".
A target whose row has no samples fails (a run that measured nothing proves nothing), and so
does a ``loss`` or ``loss_pct`` target of a run that sent nothing.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bench.errors import BenchError
from bench.load.summary import LoadSummary

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "<": operator.lt,
    ">": operator.gt,
}
_STATS = ("p50", "p95", "p99", "max", "avg", "rate", "count", "failures")
_TIME_STATS = ("p50", "p95", "p99", "max", "avg")
_TOTALS = (
    "loss",
    "loss_pct",
    "duplicates",
    "connected",
    "connect_failures",
    "sent_rate",
    "ingested_rate",
)
_STAGES = ("connect", "publish", "ingest", "unlock")
#: Totals that are only meaningful once something was sent.
_NEEDS_SENT = frozenset({"loss", "loss_pct"})
_PATTERN = re.compile(
    r"\s*(?P<target>[A-Za-z0-9_:.-]+?)\s*(?P<op><=|>=|==|<|>)\s*"
    r"(?P<number>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>ms|s|%|/s)?\s*"
)


class AssertionSyntaxError(BenchError):
    """An ``--assert`` expression that does not parse; the message shows the grammar."""

    def __init__(self, text: str, problem: str) -> None:
        self.text = text
        super().__init__(
            f"--assert {text!r}: {problem}; write e.g. 'telemetry.p99<50ms', "
            f"'unlock.p99<=20ms', 'publish:telemetry.rate>=100', 'loss==0' "
            f"(stats: {', '.join(_STATS)}; totals: {', '.join(_TOTALS)})"
        )


@dataclass(frozen=True, slots=True)
class Target:
    """One parsed target; ``name`` is ``None`` for run totals."""

    text: str
    stage: str | None
    name: str | None
    stat: str
    op: str
    limit: float

    def check(self, summary: LoadSummary) -> TargetResult:
        """Evaluate against a run summary."""
        if self.name is None and self.stat in _NEEDS_SENT and summary.counters.sent == 0:
            return TargetResult(
                self, None, False, f"{self.stat}: no message was sent, so nothing can be lost"
            )
        actual = self._actual(summary)
        if actual is None:
            return TargetResult(self, None, False, f"{self._what()}: no samples in this run")
        passed = _OPS[self.op](actual, self.limit)
        verdict = "ok" if passed else "FAILED"
        return TargetResult(
            self,
            actual,
            passed,
            f"{self._what()} = {actual:g} (target {self.op} {self.limit:g}) {verdict}",
        )

    def _what(self) -> str:
        if self.name is None:
            return self.stat
        return f"{self.stage}:{self.name}.{self.stat}"

    def _actual(self, summary: LoadSummary) -> float | None:
        if self.name is None:
            counters = summary.counters
            totals: dict[str, float] = {
                "loss": counters.unaccounted,
                "loss_pct": summary.loss_pct,
                "duplicates": counters.duplicates,
                "connected": counters.connected,
                "connect_failures": counters.connect_failures,
                "sent_rate": summary.sent_per_s,
                "ingested_rate": summary.ingested_per_s,
            }
            return totals[self.stat]
        assert self.stage is not None
        row = summary.row(self.stage, self.name)
        if row is None:
            return None
        values: dict[str, float | None] = {
            "p50": row.p50_ms,
            "p95": row.p95_ms,
            "p99": row.p99_ms,
            "max": row.max_ms,
            "avg": row.avg_ms,
            "rate": row.rate_per_s,
            "count": row.count,
            "failures": row.failures,
        }
        return values[self.stat]


@dataclass(frozen=True, slots=True)
class TargetResult:
    """The outcome of one target."""

    target: Target
    actual: float | None
    passed: bool
    message: str


def parse_target(text: str) -> Target:
    """Parse one ``--assert`` expression (see the module grammar)."""
    match = _PATTERN.fullmatch(text)
    if match is None:
        raise AssertionSyntaxError(text, "expected TARGET OP NUMBER[UNIT]")
    target, op, unit = match["target"], match["op"], match["unit"]
    limit = float(match["number"])
    if target in _TOTALS:
        if unit in ("ms", "s"):
            raise AssertionSyntaxError(text, f"{target} is not a time")
        return Target(text.strip(), None, None, target, op, limit)
    stage: str | None = None
    if ":" in target:
        stage, _, target = target.partition(":")
        if stage not in _STAGES:
            raise AssertionSyntaxError(text, f"unknown stage {stage!r} (one of {_STAGES})")
    name, dot, stat = target.rpartition(".")
    if not dot or not name:
        raise AssertionSyntaxError(text, f"{target!r} is neither NAME.STAT nor a run total")
    if stat not in _STATS:
        raise AssertionSyntaxError(text, f"unknown statistic {stat!r}")
    if stat in _TIME_STATS:
        if unit not in (None, "ms", "s"):
            raise AssertionSyntaxError(text, f"{stat} is a time: use ms or s")
        if unit == "s":
            limit *= 1000.0
    elif unit in ("ms", "s"):
        raise AssertionSyntaxError(text, f"{stat} is not a time")
    if stage is None:
        stage = "unlock" if name == "unlock" else "ingest"
    return Target(text.strip(), stage, name, stat, op, limit)


def check_all(targets: Iterable[Target], summary: LoadSummary) -> list[TargetResult]:
    """Evaluate every target."""
    return [target.check(summary) for target in targets]
