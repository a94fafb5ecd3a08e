"""Firmware images: the bytes in a board's flash, whose SHA-256 is its ``firmware_hash``.

Every node of one board family and firmware version carries the same image (the same build
flashed on many boards), so a fleet shares one baseline hash per type. Drift (seed 001:
"a hash that later changes flips it to drift_detected") is a patched copy of the image.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cache

#: Big enough to look like a flash image, small enough to hash thousands per second.
DEFAULT_IMAGE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class FirmwareImage:
    """An immutable flash image; ``sha256`` is what measured boot reports."""

    board_family: str
    version: str
    data: bytes = field(repr=False)
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", hashlib.sha256(self.data).hexdigest())

    def patched(self, offset: int, patch: bytes) -> FirmwareImage:
        """A copy with ``patch`` written at ``offset`` (an implant, a bit flip, a bad OTA)."""
        if not 0 <= offset <= len(self.data) - len(patch):
            raise ValueError(
                f"patch of {len(patch)} bytes at {offset} does not fit an image of "
                f"{len(self.data)} bytes"
            )
        data = self.data[:offset] + patch + self.data[offset + len(patch) :]
        return FirmwareImage(self.board_family, self.version, data)


@cache
def build_image(board_family: str, version: str, size: int = DEFAULT_IMAGE_BYTES) -> FirmwareImage:
    """The reproducible image of ``board_family`` at ``version`` (same inputs, same hash)."""
    header = f"AURORA-FW\0{board_family}\0{version}\0".encode()
    seed = hashlib.sha256(header).digest()
    blocks = [header]
    length = len(header)
    counter = 0
    while length < size:
        block = hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
        blocks.append(block)
        length += len(block)
        counter += 1
    return FirmwareImage(board_family, version, b"".join(blocks)[:size])
