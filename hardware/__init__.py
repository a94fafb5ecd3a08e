"""Real boards on serial ports: framing, board profiles, discovery, the bridge, conformance.

Folders are the architecture (labgrid): ``framing`` and ``session`` are pure protocol
(property-tested, no I/O); ``link`` and ``pty_port`` move bytes; ``bridge`` runs a board
against a site's broker; ``profiles`` and ``discovery`` say what is plugged in;
``conformance`` judges a board's output. Only :mod:`backend.contract` of ours is imported:
what the bench owns (PKI, bench.json) is passed in. See ``hardware/README.md``.

Exception tree::

    HardwareError
    ├── BoardNotFoundError     no plugged-in port matches the selector
    ├── AmbiguousBoardError    several boards match
    └── PortError              a port could not be opened, read or written
"""

from hardware.errors import AmbiguousBoardError, BoardNotFoundError, HardwareError, PortError
from hardware.framing import Frame, FrameDecoder, LogLine, Violation, decode_line, encode_frame

__all__ = [
    "AmbiguousBoardError",
    "BoardNotFoundError",
    "Frame",
    "FrameDecoder",
    "HardwareError",
    "LogLine",
    "PortError",
    "Violation",
    "decode_line",
    "encode_frame",
]
