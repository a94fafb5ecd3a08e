"""The bridge's rules, sans I/O: what to do with the bytes of a board and the commands for it.

:class:`BridgeSession` turns serial bytes into :class:`Publish` decisions and reports, and
contract messages from the broker into frames for the board. The rules (DESIGN.md, serial
framing):

* every frame is checked against the contract; a violation is reported and never published;
* the first valid ``status`` frame pins the board's device_id; a frame for another id is
  refused (the board's certificate speaks for one id only);
* frames that arrive before the pin wait (a bounded few) and are judged once it happens;
* status, alerts, badge events and attestation responses go out with QoS 1, telemetry with
  QoS 0 (DESIGN.md, delivery).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from backend.contract import ContractViolation, MessageKind, decode_payload, parse_topic, topic_for
from hardware.framing import (
    Frame,
    FrameDecoder,
    LogLine,
    Violation,
    encode_frame,
    quote,
)

#: QoS per upstream kind (DESIGN.md: what matters is QoS 1, telemetry may be QoS 0).
QOS_BY_KIND = {
    MessageKind.STATUS: 1,
    MessageKind.TELEMETRY: 0,
    MessageKind.ALERTS: 1,
    MessageKind.BADGE_EVENT: 1,
    MessageKind.ATTESTATION_RESPONSE: 1,
}
#: Frames kept while no status has pinned the id yet; older ones are refused beyond this.
MAX_UNPINNED_FRAMES = 64


@dataclass(frozen=True, slots=True)
class Publish:
    """Publish ``payload`` on ``topic`` with ``qos`` (the board's own identity)."""

    kind: MessageKind
    topic: str
    payload: bytes
    qos: int


@dataclass(frozen=True, slots=True)
class Refused:
    """A valid frame the bridge will not publish, and why."""

    frame: Frame
    detail: str

    def one_line(self) -> str:
        """The refusal as one line."""
        return f"refused {self.frame.kind.value} frame: {self.detail}"


@dataclass(frozen=True, slots=True)
class Pinned:
    """The first valid status frame named the board: ``device_id`` from now on."""

    device_id: str


@dataclass(frozen=True, slots=True)
class Downlink:
    """A message for the board, framed: ``frame`` is the exact line to write."""

    kind: MessageKind
    frame: bytes
    payload: bytes


SessionEvent = LogLine | Violation | Refused | Pinned | Publish


@dataclass
class BridgeStats:
    """Counters a user (and a test) reads to see what the bridge did."""

    frames: Counter[str] = field(default_factory=Counter)
    violations: int = 0
    refused: int = 0
    log_lines: int = 0
    published: int = 0
    dropped: int = 0
    commands_down: int = 0
    commands_dropped: int = 0
    port_opens: int = 0
    broker_connects: int = 0


class BridgeSession:
    """The sans-I/O core of the bridge (see the module doc)."""

    def __init__(self, max_unpinned: int = MAX_UNPINNED_FRAMES) -> None:
        self.decoder = FrameDecoder()
        self.device_id: str | None = None
        self.stats = BridgeStats()
        self._unpinned: deque[Frame] = deque()
        self._max_unpinned = max_unpinned

    def receive(self, data: bytes) -> list[SessionEvent]:
        """Bytes from the board -> log lines, reports, the pin and publish decisions."""
        events: list[SessionEvent] = []
        for item in self.decoder.feed(data):
            if isinstance(item, LogLine):
                self.stats.log_lines += 1
                events.append(item)
            elif isinstance(item, Violation):
                self.stats.violations += 1
                events.append(item)
            else:
                self.stats.frames[item.kind.value] += 1
                events.extend(self._frame(item))
        return events

    def line_lost(self) -> None:
        """The port was reopened: a half-received line from before is gone for good."""
        self.decoder = FrameDecoder(self.decoder.accept, self.decoder.max_line_bytes)

    def _frame(self, frame: Frame) -> list[SessionEvent]:
        if self.device_id is None:
            if frame.kind is not MessageKind.STATUS:
                self._unpinned.append(frame)
                if len(self._unpinned) > self._max_unpinned:
                    oldest = self._unpinned.popleft()
                    self.stats.refused += 1
                    return [Refused(oldest, "no status frame yet to pin the device id")]
                return []
            device_id = frame.device_id
            assert device_id is not None  # every upstream kind carries one
            self.device_id = device_id
            events: list[SessionEvent] = [Pinned(device_id), self._judge(frame)]
            while self._unpinned:
                events.append(self._judge(self._unpinned.popleft()))
            return events
        return [self._judge(frame)]

    def _judge(self, frame: Frame) -> Publish | Refused:
        assert self.device_id is not None
        if frame.device_id != self.device_id:
            self.stats.refused += 1
            return Refused(
                frame,
                f"device_id {frame.device_id!r} is not this board's pinned id "
                f"{self.device_id!r} (the first status frame pinned it)",
            )
        return Publish(
            frame.kind,
            topic_for(frame.kind, self.device_id),
            frame.payload,
            QOS_BY_KIND[frame.kind],
        )

    def subscriptions(self) -> tuple[str, ...]:
        """The downstream topics of the pinned board (command, attestation request)."""
        if self.device_id is None:
            return ()
        return (
            topic_for(MessageKind.COMMAND, self.device_id),
            topic_for(MessageKind.ATTESTATION_REQUEST, self.device_id),
        )

    def downward(self, topic: str, payload: bytes) -> Downlink | Violation:
        """A message from the broker -> the frame line for the board, or why not.

        The payload is validated and re-encoded, so the board always gets compact JSON on one
        line whatever the sender's formatting.
        """
        try:
            parsed = parse_topic(topic)
            if parsed.kind.upstream or parsed.device_id != self.device_id:
                return Violation(
                    "unexpected_topic", f"not a downstream topic of {self.device_id}", payload
                )
            message = decode_payload(parsed.kind, payload)
        except ContractViolation as error:
            return Violation(
                error.reason.value, f"{error.detail} (from the broker, {topic})", payload
            )
        frame = encode_frame(parsed.kind, message)  # type: ignore[arg-type]
        return Downlink(parsed.kind, frame, frame.split(b" ", 2)[2].rstrip(b"\n"))


def describe(event: SessionEvent) -> str:
    """A console line for an event (without prefix or timestamp)."""
    if isinstance(event, LogLine):
        return event.text + (" [truncated]" if event.truncated else "")
    if isinstance(event, Violation):
        return f"!! contract violation: {event.one_line()}"
    if isinstance(event, Refused):
        return f"!! {event.one_line()} | frame: {quote(event.frame.payload)}"
    if isinstance(event, Pinned):
        return f"-- first status frame: this board is {event.device_id}"
    return f"-> {event.kind.value}"
