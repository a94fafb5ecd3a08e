"""A PN532 NFC reader as the firmware sees it on its UART: the frame codec and a target
model, sans I/O (the emulated tier plays the reader the firmware drives).

Frames (NXP UM0701-02 §6.2)::

    00 | 00 FF | LEN | LCS | TFI | PD0..PDn | DCS | 00      (LEN + LCS = 0, TFI+PD+DCS = 0)
    ACK = 00 00 FF 00 FF 00;   TFI D4 host -> PN532, D5 PN532 -> host

The model answers ``SAMConfiguration`` and ``InListPassiveTarget`` (106 kbps type A): a
card put on the reader with :meth:`Pn532Model.present` is reported by the next poll, once,
as a real card leaves the field after a read. Other commands get the PN532's syntax-error
frame, so a firmware talking nonsense sees what a real reader would send.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

TFI_HOST = 0xD4
TFI_PN532 = 0xD5
ACK = bytes([0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00])
#: The PN532's "syntax error" application-level error frame (UM0701-02 §6.2.1.5).
ERROR_FRAME = bytes([0x00, 0x00, 0xFF, 0x01, 0xFF, 0x7F, 0x81, 0x00])
SAM_CONFIGURATION = 0x14
IN_LIST_PASSIVE_TARGET = 0x4A
#: SENS_RES and SEL_RES of a MIFARE Classic 1K: 4-byte UIDs; 7-byte ones answer 0x0044/0x00.
_SENS_SEL = {4: (b"\x00\x04", 0x08), 7: (b"\x00\x44", 0x00), 10: (b"\x00\x44", 0x00)}


def build_frame(tfi: int, data: bytes) -> bytes:
    """A normal information frame around ``tfi`` + ``data``."""
    length = len(data) + 1
    if length > 255:
        raise ValueError("a normal PN532 frame carries at most 254 data bytes")
    checksum = (-(tfi + sum(data))) & 0xFF
    return bytes([0x00, 0x00, 0xFF, length, (-length) & 0xFF, tfi, *data, checksum, 0x00])


@dataclass(frozen=True)
class Frame:
    """A decoded frame: its TFI and its data bytes (command code first)."""

    tfi: int
    data: bytes


class FrameDecoder:
    """Bytes in, frames out; garbage before a start code is skipped, bad frames dropped."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.bad_frames = 0

    def feed(self, data: bytes) -> list[Frame | bytes]:
        """Every complete frame (or the ACK, as ``ACK``) in what arrived so far."""
        self._buffer += data
        out: list[Frame | bytes] = []
        while True:
            start = self._buffer.find(b"\x00\xff")
            if start < 0:
                del self._buffer[: max(0, len(self._buffer) - 1)]
                return out
            del self._buffer[:start]
            if len(self._buffer) < 4:
                return out
            length, lcs = self._buffer[2], self._buffer[3]
            if length == 0x00 and lcs == 0xFF:
                out.append(ACK)
                del self._buffer[:4]
                continue
            if (length + lcs) & 0xFF or length == 0:
                self.bad_frames += 1
                del self._buffer[:2]
                continue
            if len(self._buffer) < 4 + length + 1:
                return out
            body = bytes(self._buffer[4 : 4 + length])
            checksum = self._buffer[4 + length]
            del self._buffer[: 4 + length + 1]
            if (sum(body) + checksum) & 0xFF:
                self.bad_frames += 1
                continue
            out.append(Frame(body[0], body[1:]))


class Pn532Model:
    """The reader: feed it what the firmware wrote, send back what :meth:`feed` returns."""

    def __init__(self) -> None:
        self._decoder = FrameDecoder()
        self._cards: deque[bytes] = deque()
        self.commands: list[int] = []

    @property
    def bad_frames(self) -> int:
        """Frames from the firmware with a wrong length or checksum."""
        return self._decoder.bad_frames

    def present(self, uid: bytes) -> None:
        """Put a card with this UID (4, 7 or 10 bytes) on the reader for one read."""
        if len(uid) not in _SENS_SEL:
            raise ValueError(f"an ISO 14443A UID has 4, 7 or 10 bytes, not {len(uid)}")
        self._cards.append(uid)

    @property
    def waiting(self) -> int:
        """Cards presented and not read yet."""
        return len(self._cards)

    def feed(self, data: bytes) -> bytes:
        """What the reader answers to these bytes from the firmware."""
        reply = bytearray()
        for item in self._decoder.feed(data):
            if not isinstance(item, Frame) or item.tfi != TFI_HOST or not item.data:
                continue
            command = item.data[0]
            self.commands.append(command)
            reply += ACK
            reply += self._answer(command, item.data[1:])
        return bytes(reply)

    def _answer(self, command: int, params: bytes) -> bytes:
        if command == SAM_CONFIGURATION:
            return build_frame(TFI_PN532, bytes([SAM_CONFIGURATION + 1]))
        if command == IN_LIST_PASSIVE_TARGET and len(params) >= 2 and params[1] == 0x00:
            if not self._cards:
                return build_frame(TFI_PN532, bytes([IN_LIST_PASSIVE_TARGET + 1, 0]))
            uid = self._cards.popleft()
            sens_res, sel_res = _SENS_SEL[len(uid)]
            target = bytes([1]) + sens_res + bytes([sel_res, len(uid)]) + uid
            return build_frame(TFI_PN532, bytes([IN_LIST_PASSIVE_TARGET + 1, 1]) + target)
        return ERROR_FRAME
