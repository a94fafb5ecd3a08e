"""Contract conformance of a board's serial output, for a firmware CI job.

:class:`ConformanceCheck` takes decoded items (with the time each was read, when known) and
builds a :class:`ConformanceReport`: frames by kind, every violation in one line, the status
fields the board announced, and how regular its heartbeat is. A board conforms when it sent
at least one valid ``status`` frame, no violations, and frames for one device id only.
"""

from __future__ import annotations

import itertools
import statistics
from collections import Counter
from dataclasses import dataclass, field

from backend.contract import MessageKind, StatusMessage
from hardware.framing import Frame, FrameDecoder, Item, LogLine, Violation


@dataclass(frozen=True, slots=True)
class HeartbeatStats:
    """Intervals between consecutive ``status`` frames, in seconds."""

    count: int
    mean_s: float
    min_s: float
    max_s: float
    stdev_s: float

    @property
    def jitter_ratio(self) -> float:
        """Spread relative to the mean (0 = a perfect clock)."""
        return self.stdev_s / self.mean_s if self.mean_s > 0 else 0.0


@dataclass
class ConformanceReport:
    """What a conformance run saw; :attr:`passed` is the CI verdict."""

    frames: Counter[str] = field(default_factory=Counter)
    violations: list[Violation] = field(default_factory=list)
    log_lines: int = 0
    device_ids: list[str] = field(default_factory=list)
    status_fields: dict[str, str] = field(default_factory=dict)
    status_times: list[float] = field(default_factory=list)
    timed: bool = False

    @property
    def heartbeat(self) -> HeartbeatStats | None:
        """Interval statistics, or None with fewer than two timed status frames."""
        times = self.status_times
        if len(times) < 2:
            return None
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        return HeartbeatStats(
            count=len(gaps),
            mean_s=statistics.fmean(gaps),
            min_s=min(gaps),
            max_s=max(gaps),
            stdev_s=statistics.pstdev(gaps),
        )

    @property
    def problems(self) -> list[str]:
        """Reasons the run fails beyond individual violations."""
        found = []
        if not self.frames[MessageKind.STATUS.value]:
            found.append(
                "no valid status frame: the backend registers a board only from its status "
                "heartbeat (seed 001)"
            )
        if len(self.device_ids) > 1:
            found.append(
                f"frames for several device ids ({', '.join(self.device_ids)}): a board "
                "speaks for one id, the bridge refuses the others"
            )
        return found

    @property
    def passed(self) -> bool:
        """True when the board conforms."""
        return not self.violations and not self.problems

    def render(self) -> str:
        """The human-readable report."""
        lines = ["frames by kind:"]
        lines += [f"  {kind.value:22} {self.frames[kind.value]}" for kind in MessageKind]
        lines.append(f"log lines: {self.log_lines}")
        lines.append(f"device ids: {', '.join(self.device_ids) or '-'}")
        if self.status_fields:
            lines.append("status fields announced:")
            lines += [f"  {name:18} {value}" for name, value in self.status_fields.items()]
        beat = self.heartbeat
        if beat is None:
            if self.timed:
                lines.append("heartbeat: n/a - fewer than two status frames")
            else:
                lines.append("heartbeat: n/a - a capture file carries no timing")
        else:
            lines.append(
                f"heartbeat: {beat.count} intervals, mean {beat.mean_s:.3f} s, "
                f"min {beat.min_s:.3f} s, max {beat.max_s:.3f} s, "
                f"stdev {beat.stdev_s:.3f} s ({beat.jitter_ratio:.1%} of mean)"
            )
        lines.append(f"violations: {len(self.violations)}")
        lines += [f"  {violation.one_line()}" for violation in self.violations]
        lines += [f"problem: {problem}" for problem in self.problems]
        lines.append("PASS" if self.passed else "FAIL")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, object]:
        """The report as JSON-ready data (for CI artefacts)."""
        beat = self.heartbeat
        return {
            "passed": self.passed,
            "frames": {kind.value: self.frames[kind.value] for kind in MessageKind},
            "log_lines": self.log_lines,
            "device_ids": self.device_ids,
            "status_fields": self.status_fields,
            "heartbeat": None
            if beat is None
            else {
                "intervals": beat.count,
                "mean_s": beat.mean_s,
                "min_s": beat.min_s,
                "max_s": beat.max_s,
                "stdev_s": beat.stdev_s,
            },
            "violations": [violation.one_line() for violation in self.violations],
            "problems": self.problems,
        }


@dataclass
class ConformanceCheck:
    """Feeds bytes (or decoded items) into a :class:`ConformanceReport`."""

    report: ConformanceReport = field(default_factory=ConformanceReport)
    decoder: FrameDecoder = field(default_factory=FrameDecoder)

    def feed(self, data: bytes, at_s: float | None = None) -> list[Item]:
        """Decode ``data`` read at ``at_s`` (monotonic seconds; None for a capture)."""
        items = self.decoder.feed(data)
        self.report.timed = self.report.timed or at_s is not None
        for item in items:
            self.add(item, at_s)
        return items

    def finish(self) -> ConformanceReport:
        """End of input: decode the last unterminated line and return the report."""
        for item in self.decoder.flush():
            self.add(item, None)
        return self.report

    def add(self, item: Item, at_s: float | None) -> None:
        """Account for one decoded item."""
        report = self.report
        if isinstance(item, LogLine):
            report.log_lines += 1
        elif isinstance(item, Violation):
            report.violations.append(item)
        else:
            self._frame(item, at_s)

    def _frame(self, frame: Frame, at_s: float | None) -> None:
        report = self.report
        report.frames[frame.kind.value] += 1
        device_id = frame.device_id
        if device_id is not None and device_id not in report.device_ids:
            report.device_ids.append(device_id)
        if isinstance(frame.message, StatusMessage):
            for name, value in frame.message.model_dump(exclude_none=True).items():
                report.status_fields[name] = str(value)
            if at_s is not None:
                report.status_times.append(at_s)


def check_capture(data: bytes) -> ConformanceReport:
    """Conformance of a capture file (the raw bytes read from a port)."""
    check = ConformanceCheck()
    check.feed(data)
    return check.finish()
