"""The CPS MQTT ingest contract (seed 001) and the parts DESIGN.md decides.

Single source of truth for the wire format, imported by the backend, the simulators and the
hardware bridge. It imports nothing of ours and does no I/O.

Exception tree::

    ContractError
    └── ContractViolation   a message that breaks the contract; carries reason, field, detail
"""

from backend.contract.errors import ContractError, ContractViolation, RejectReason
from backend.contract.messages import (
    BADGE_UID_PATTERN,
    MAX_PAYLOAD_BYTES,
    AlertMessage,
    AttestationRequest,
    AttestationResponse,
    BadgeEvent,
    CommandMessage,
    CommandVerb,
    DownstreamMessage,
    Severity,
    StatusMessage,
    TelemetryMessage,
    UpstreamMessage,
    decode_payload,
    decode_upstream,
    encode,
)
from backend.contract.structure import MAX_JSON_DEPTH
from backend.contract.topics import (
    DEVICE_ID_PATTERN,
    MessageKind,
    Topic,
    parse_topic,
    topic_for,
    validate_device_id,
)

__all__ = [
    "BADGE_UID_PATTERN",
    "DEVICE_ID_PATTERN",
    "MAX_JSON_DEPTH",
    "MAX_PAYLOAD_BYTES",
    "AlertMessage",
    "AttestationRequest",
    "AttestationResponse",
    "BadgeEvent",
    "CommandMessage",
    "CommandVerb",
    "ContractError",
    "ContractViolation",
    "DownstreamMessage",
    "MessageKind",
    "RejectReason",
    "Severity",
    "StatusMessage",
    "TelemetryMessage",
    "Topic",
    "UpstreamMessage",
    "decode_payload",
    "decode_upstream",
    "encode",
    "parse_topic",
    "topic_for",
    "validate_device_id",
]
