"""Errors of a load run grouped as eMQTT-Bench prints them: per cause and reason, counted.

A cause is what failed (``connect``, ``disconnect``, ``publish``, ``redis``, ``worker``), a
reason is short and countable (``ECONNREFUSED``, ``Not authorized``); the first full message
is kept, later ones only counted, so a thousand refused connections read as one line.
Workers fill a :class:`Problems`, the master merges their rows. Pure.
"""

from __future__ import annotations

import errno

from pydantic import BaseModel, ConfigDict


class Problem(BaseModel):
    """One (cause, reason): how often, and the first full message seen."""

    model_config = ConfigDict(frozen=True)

    cause: str
    reason: str
    count: int
    first: str
    #: A fatal problem ends the run at once (nothing further would be measured honestly).
    fatal: bool = False

    def render(self) -> str:
        """``connect ECONNREFUSED x12 (first: load-esp32s3-0000000: ...)``."""
        return f"{self.cause} {self.reason} x{self.count} (first: {self.first})"


def reason_of(error: object) -> str:
    """A short, countable reason: the errno name of an OS error, else the error's text.

    Anything else (a paho reason code, say) counts by its text.
    """
    if isinstance(error, OSError) and error.errno is not None and error.errno in errno.errorcode:
        return errno.errorcode[error.errno]
    text = str(error)
    if isinstance(error, BaseException) and not text:
        text = type(error).__name__
    return text.splitlines()[0][:80] if text else "unknown"


class Problems:
    """Errors grouped by cause and reason (first message kept, later ones counted)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], Problem] = {}

    def record(self, cause: str, error: object, message: str, *, fatal: bool = False) -> None:
        """Count one occurrence of ``error`` under ``cause``; ``message`` is kept if first."""
        key = (cause, reason_of(error))
        row = self._rows.get(key)
        if row is None:
            self._rows[key] = Problem(
                cause=cause, reason=key[1], count=1, first=message, fatal=fatal
            )
        else:
            self._rows[key] = row.model_copy(
                update={"count": row.count + 1, "fatal": row.fatal or fatal}
            )

    def rows(self) -> list[Problem]:
        """Every row, most frequent first."""
        return sorted(self._rows.values(), key=lambda row: (-row.count, row.cause, row.reason))

    @property
    def fatal(self) -> bool:
        """True when a fatal problem was recorded."""
        return any(row.fatal for row in self._rows.values())

    def merge(self, rows: list[Problem]) -> None:
        """Add rows of another process (counts add, the first message already kept stays)."""
        for row in rows:
            mine = self._rows.get((row.cause, row.reason))
            if mine is None:
                self._rows[(row.cause, row.reason)] = row
            else:
                self._rows[(row.cause, row.reason)] = mine.model_copy(
                    update={"count": mine.count + row.count, "fatal": mine.fatal or row.fatal}
                )


def merged(*groups: list[Problem]) -> list[Problem]:
    """The rows of several processes as one list."""
    problems = Problems()
    for rows in groups:
        problems.merge(rows)
    return problems.rows()
