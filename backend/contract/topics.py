"""Topic names of seed 001 and the device-id rule.

The topic's device id is an *untrusted label* (seed 001, security notes): it is validated
by pattern before anything else, and the broker's ACL pins who may publish under it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import StrEnum

from backend.contract.errors import ContractViolation, RejectReason

DEVICE_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Full-match on str only; ``$`` would accept a trailing newline, so use fullmatch below.
_DEVICE_ID_FULL = re.compile(r"[A-Za-z0-9_-]{1,64}")


class MessageKind(StrEnum):
    """Every message kind of the contract, named as in the serial framing (DESIGN.md)."""

    STATUS = "status"
    TELEMETRY = "telemetry"
    ALERTS = "alerts"
    BADGE_EVENT = "badge_event"
    ATTESTATION_RESPONSE = "attestation_response"
    COMMAND = "command"
    ATTESTATION_REQUEST = "attestation_request"

    @property
    def upstream(self) -> bool:
        """True for device -> backend kinds."""
        return self not in (MessageKind.COMMAND, MessageKind.ATTESTATION_REQUEST)


# (prefix, suffix) of aurora/<prefix>/<device_id>/<suffix> per kind.
_LAYOUT: dict[MessageKind, tuple[str, str]] = {
    MessageKind.STATUS: ("sensors", "status"),
    MessageKind.TELEMETRY: ("sensors", "telemetry"),
    MessageKind.ALERTS: ("sensors", "alerts"),
    MessageKind.BADGE_EVENT: ("access", "badge_event"),
    MessageKind.COMMAND: ("access", "command"),
    MessageKind.ATTESTATION_RESPONSE: ("attestation", "response"),
    MessageKind.ATTESTATION_REQUEST: ("attestation", "request"),
}
_BY_PARTS = {parts: kind for kind, parts in _LAYOUT.items()}

#: The subscriptions that cover every upstream topic (the backend's ingest filters).
UPSTREAM_FILTERS: tuple[str, ...] = (
    "aurora/sensors/+/status",
    "aurora/sensors/+/telemetry",
    "aurora/sensors/+/alerts",
    "aurora/access/+/badge_event",
    "aurora/attestation/+/response",
)


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed contract topic."""

    kind: MessageKind
    device_id: str

    def __str__(self) -> str:
        return topic_for(self.kind, self.device_id)


def validate_device_id(device_id: str) -> str:
    """Return ``device_id`` if it matches ``^[A-Za-z0-9_-]{1,64}$``, else raise."""
    if not isinstance(device_id, str) or _DEVICE_ID_FULL.fullmatch(device_id) is None:
        raise ContractViolation(
            RejectReason.BAD_DEVICE_ID,
            f"device id {device_id!r} does not match ^[A-Za-z0-9_-]{{1,64}}$",
            "device_id",
        )
    return device_id


def topic_for(kind: MessageKind, device_id: str) -> str:
    """The MQTT topic of ``kind`` for ``device_id`` (validated)."""
    prefix, suffix = _LAYOUT[kind]
    return f"aurora/{prefix}/{validate_device_id(device_id)}/{suffix}"


@functools.lru_cache(maxsize=16_384)
def parse_topic(topic: str) -> Topic:
    """Parse a contract topic; the device id is checked before the kind is looked up.

    Cached (a :class:`Topic` is immutable): a fleet publishes on a few topics per device,
    and the parse was a third of decoding a reading. A refused topic raises every time.
    """
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != "aurora":
        raise ContractViolation(
            RejectReason.UNKNOWN_TOPIC, f"topic {topic!r} is not aurora/<area>/<device_id>/<kind>"
        )
    _, prefix, device_id, suffix = parts
    validate_device_id(device_id)
    kind = _BY_PARTS.get((prefix, suffix))
    if kind is None:
        raise ContractViolation(
            RejectReason.UNKNOWN_TOPIC, f"topic {topic!r} names no message type of the contract"
        )
    return Topic(kind, device_id)
