"""Errors of the inspection pipeline.

Tree::

    InspectionError
    └── RulesError        a rules file is broken: ``file:line: what is wrong`` per problem
"""

from __future__ import annotations

from dataclasses import dataclass


class InspectionError(Exception):
    """Root of everything the inspection pipeline raises on purpose."""


@dataclass(frozen=True)
class RuleProblem:
    """One thing wrong in a rules file, at a line when one is known."""

    line: int | None
    message: str


class RulesError(InspectionError):
    """A rules file is broken; :meth:`lines` says where and what, one line per problem."""

    def __init__(self, source: str, problems: list[RuleProblem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        """Every problem as ``file:line: message``."""
        return [
            f"{self.source}:{p.line}: {p.message}" if p.line else f"{self.source}: {p.message}"
            for p in self.problems
        ]
