"""The serial line protocol of DESIGN.md, sans I/O: ``@aurora <kind> <compact JSON>\\n``.

One frame per line. ``kind`` is a :class:`~backend.contract.MessageKind` value: ``status,
telemetry, alerts, badge_event, attestation_response`` flow up (board -> host), ``command,
attestation_request`` flow down. Any other line is the board's log output: it is kept and
shown, never parsed as data.

:class:`FrameDecoder` is incremental: feed it whatever bytes a read returned, in any
chunking, and it yields :class:`Frame`, :class:`LogLine` and :class:`Violation` items. It
never raises on input: partial lines wait for their newline, CRLF is accepted, bytes that are
not UTF-8 are shown escaped, and a line longer than the bound is reported once and skipped
up to the next newline (the buffer never grows past the bound).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

from backend.contract import (
    MAX_PAYLOAD_BYTES,
    ContractViolation,
    DownstreamMessage,
    MessageKind,
    UpstreamMessage,
    decode_payload,
    encode,
)
from backend.contract.messages import KIND_BY_MODEL

#: Every line that starts with this (after leading noise) is a frame, never a log line.
MARKER = b"@aurora "
#: Room for the marker, the longest kind name and a maximal payload (4 KiB, seed contract).
MAX_LINE_BYTES = len(MARKER) + max(len(kind.value) for kind in MessageKind) + 1 + MAX_PAYLOAD_BYTES
#: How much of an offending line a violation quotes, so the report stays one line.
QUOTE_BYTES = 160

UPSTREAM_KINDS = frozenset(kind for kind in MessageKind if kind.upstream)
DOWNSTREAM_KINDS = frozenset(kind for kind in MessageKind if not kind.upstream)

ContractMessage = UpstreamMessage | DownstreamMessage


@dataclass(frozen=True, slots=True)
class Frame:
    """A valid frame: its kind, the validated contract message and the exact payload bytes."""

    kind: MessageKind
    message: ContractMessage
    payload: bytes

    @property
    def device_id(self) -> str | None:
        """The payload's ``device_id`` (upstream kinds carry one; downstream kinds do not)."""
        return cast(str | None, getattr(self.message, "device_id", None))


@dataclass(frozen=True, slots=True)
class LogLine:
    """A line of board log output; ``truncated`` when it was longer than the line bound."""

    text: str
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class Violation:
    """A frame line that breaks the protocol or the contract.

    ``reason`` is a :class:`~backend.contract.RejectReason` value or one of the framing
    reasons (``unknown_kind``, ``wrong_direction``, ``bad_frame``, ``overlong``); ``field``
    names the offending payload field ("" for the whole frame); ``line`` is the frame as
    received (possibly cut to the line bound).
    """

    reason: str
    detail: str
    line: bytes
    kind: MessageKind | None = None
    field: str = ""

    def one_line(self) -> str:
        """Which field, what was expected, and the frame - on one line."""
        where = f" field {self.field!r}" if self.field else ""
        kind = f" in {self.kind.value} frame" if self.kind else ""
        return f"{self.reason}{kind}{where}: {self.detail} | frame: {quote(self.line)}"


Item = Frame | LogLine | Violation


def quote(line: bytes, limit: int = QUOTE_BYTES) -> str:
    """``line`` as printable text: non-UTF-8 bytes escaped, cut to ``limit`` bytes."""
    shown = line[:limit].decode("utf-8", errors="backslashreplace")
    shown = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in shown)
    return shown + ("..." if len(line) > limit else "")


def encode_frame(kind: MessageKind, message: ContractMessage) -> bytes:
    """One frame line for ``message``; ``kind`` must be the message's own kind."""
    expected = KIND_BY_MODEL.get(type(message))
    if expected is not kind:
        shown = expected.value if expected else type(message).__name__
        raise ValueError(f"a {shown} message cannot be framed as {kind.value}")
    return MARKER + kind.value.encode() + b" " + encode(message) + b"\n"


def _strip_noise(line: bytes) -> bytes:
    # A board that resets mid-line, or a ROM bootloader at another baud rate, leaves control
    # and high bytes on the wire before the next real output; they belong to no line.
    start = 0
    while start < len(line) and (line[start] < 0x20 or line[start] >= 0x80):
        start += 1
    return line[start:]


def decode_line(line: bytes, accept: Iterable[MessageKind] = UPSTREAM_KINDS) -> Item:
    """Decode one complete line (without its newline); ``accept`` are the expected kinds.

    Kinds of the other direction are a ``wrong_direction`` violation: a board that sends a
    ``command`` frame up has a firmware bug worth hearing about.
    """
    accepted = frozenset(accept)
    line = line.removesuffix(b"\r")
    body = _strip_noise(line)
    if not body.startswith(MARKER):
        return LogLine(line.decode("utf-8", errors="backslashreplace"))
    kind_bytes, _, payload = body[len(MARKER) :].partition(b" ")
    try:
        kind = MessageKind(kind_bytes.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        known = ", ".join(sorted(k.value for k in accepted))
        return Violation(
            "unknown_kind", f"frame kind {quote(kind_bytes, 40)!r} is not one of {known}", body
        )
    if kind not in accepted:
        direction = "host -> board" if not kind.upstream else "board -> host"
        return Violation(
            "wrong_direction", f"{kind.value} frames flow {direction} only", body, kind
        )
    if not payload.strip():
        return Violation(
            "bad_frame", "expected '@aurora <kind> <compact JSON>', the JSON is missing", body, kind
        )
    try:
        message = decode_payload(kind, payload)
    except ContractViolation as error:
        return Violation(error.reason.value, error.detail, body, kind, error.field)
    return Frame(kind, cast(ContractMessage, message), payload)


@dataclass
class FrameDecoder:
    """Incremental decoder: ``feed`` bytes, get the items of every completed line.

    ``max_line_bytes`` bounds the buffer: a longer line is reported (a frame as an
    ``overlong`` violation, a log line as a truncated :class:`LogLine`) and the rest of it is
    skipped up to the next newline, so one runaway line cannot exhaust memory or swallow the
    frames after it.
    """

    accept: frozenset[MessageKind] = UPSTREAM_KINDS
    max_line_bytes: int = MAX_LINE_BYTES
    _buffer: bytearray = field(default_factory=bytearray, repr=False)
    _skipping: bool = field(default=False, repr=False)

    def feed(self, data: bytes) -> list[Item]:
        """Consume ``data``; return the items of the lines it completed, in order."""
        items: list[Item] = []
        start = 0
        while start < len(data):
            newline = data.find(b"\n", start)
            end = len(data) if newline < 0 else newline
            if self._skipping:
                if newline >= 0:
                    self._skipping = False
            else:
                # Never hold more than one byte past the bound, whatever the chunk size.
                room = self.max_line_bytes + 1 - len(self._buffer)
                self._buffer += data[start : min(end, start + room)]
                if len(self._buffer) > self.max_line_bytes:
                    items.append(self._overlong())
                    self._skipping = newline < 0
                elif newline >= 0:
                    items.extend(self._complete())
            start = end + 1
        return items

    def flush(self) -> list[Item]:
        """End of input (a capture file's last, unterminated line): decode what is buffered."""
        if self._skipping:
            self._skipping = False
            return []
        return self._complete()

    @property
    def buffered(self) -> int:
        """Bytes waiting for their newline (never more than ``max_line_bytes``)."""
        return len(self._buffer)

    def _complete(self) -> list[Item]:
        line = bytes(self._buffer)
        self._buffer.clear()
        if not line.removesuffix(b"\r").strip():
            return []
        return [decode_line(line, self.accept)]

    def _overlong(self) -> Item:
        line = bytes(self._buffer[: self.max_line_bytes])
        self._buffer.clear()
        if _strip_noise(line).startswith(MARKER):
            return Violation(
                "overlong",
                f"line exceeds {self.max_line_bytes} bytes without a newline; skipped to the "
                f"next newline (a payload may be at most {MAX_PAYLOAD_BYTES} bytes)",
                _strip_noise(line),
            )
        return LogLine(line.decode("utf-8", errors="backslashreplace"), truncated=True)
