"""Errors the bench raises on purpose; each says what went wrong and what to do.

Exception tree::

    BenchError
    ├── ServiceStartError     a server did not come up (carries its log tail)
    ├── ToolMissingError      a required binary is not installed
    ├── BenchFileError        bench.json missing or unreadable (run `aurora-bench up` first)
    ├── PkiError              certificate material missing or invalid
    └── ScenarioError         a scenario file is broken (file:line: what is wrong)
"""

from __future__ import annotations


class BenchError(Exception):
    """Root of everything the bench raises on purpose."""


class ServiceStartError(BenchError):
    """A service did not start; ``log_tail`` holds the end of its log."""

    def __init__(self, service: str, reason: str, log_tail: str = "") -> None:
        self.service = service
        self.reason = reason
        self.log_tail = log_tail
        tail = f"\n--- last lines of the {service} log ---\n{log_tail}" if log_tail else ""
        super().__init__(f"{service} did not start: {reason}{tail}")


class ToolMissingError(BenchError):
    """A binary the bench needs is not on PATH."""

    def __init__(self, tool: str, package: str) -> None:
        self.tool = tool
        self.package = package
        super().__init__(
            f"{tool} is not installed; run `make setup` or `sudo apt-get install {package}`"
        )


class BenchFileError(BenchError):
    """bench.json is missing or unreadable."""


class PkiError(BenchError):
    """Certificate material is missing or invalid."""


class ScenarioError(BenchError):
    """A scenario file is broken; the message reads ``file:line: what is wrong``."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        self.message = message
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")
