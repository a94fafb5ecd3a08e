"""Figures and the results file of ``make bench`` (schema fixed by DESIGN.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured number; ``baseline`` is the same quantity for the reference system."""

    name: str
    value: float
    unit: str
    baseline: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """value / baseline, when a baseline was measured in the same run."""
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline  # type: ignore[operator]


def write_results(figures: list[Figure], path: Path, *, replace: bool = False) -> Path:
    """Merge ``figures`` into the results JSON at ``path`` (other figures are kept), or
    ``replace`` its content with them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, object] = {}
    if not replace:
        try:
            data = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            data = {}
    for figure in figures:
        data[figure.name] = {
            "value": figure.value,
            "unit": figure.unit,
            "baseline": figure.baseline,
        }
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path
