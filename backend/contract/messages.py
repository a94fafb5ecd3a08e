"""Payload models of seed 001 plus the shapes DESIGN.md decides (commands, attestation).

Models are strict: unknown fields, wrong types, NaN/Infinity and payloads over
``MAX_PAYLOAD_BYTES`` are refused with a :class:`ContractViolation` naming the field.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from backend.contract.errors import ContractViolation, RejectReason
from backend.contract.structure import check_depth, strict_parse
from backend.contract.topics import MessageKind, Topic, parse_topic

#: DESIGN.md: payloads over 4 KiB are rejected before parsing.
MAX_PAYLOAD_BYTES = 4096

DeviceId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
#: Badge UIDs are whole bytes, 4 to 10 of them, as hex in either case (readers differ; the
#: backend normalises to upper case): ISO/IEC 14443-3 single/double/triple size (4, 7, 10),
#: 125 kHz EM4100 (5) and ISO 15693 / FeliCa (8). An odd digit count is a reader bug.
BADGE_UID_PATTERN = r"^(?:[0-9A-Fa-f]{2}){4,10}$"
Token = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
Rfc3339 = Annotated[
    str,
    Field(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"),
]


class Severity(StrEnum):
    """Alert severities, ordered from least to most severe."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Position in the order info < low < medium < high < critical."""
        return _SEVERITY_ORDER.index(self)


_SEVERITY_ORDER = list(Severity)


class CommandVerb(StrEnum):
    """Lock verbs on ``aurora/access/<id>/command`` (DESIGN.md)."""

    UNLOCK = "unlock"
    LOCK = "lock"
    LOCKDOWN = "lockdown"
    LOCKDOWN_CLEAR = "lockdown_clear"
    KEEPALIVE = "keepalive"


class _Message(BaseModel):
    # Strictness is applied when parsing the wire (``strict=True`` below) so that Python
    # code may still build messages from plain strings for enums.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class StatusMessage(_Message):
    """Heartbeat plus firmware identity; ``firmware_hash`` only from measured boot."""

    device_type: Token
    board_family: Token
    firmware_stack: Token
    firmware_version: Annotated[str, Field(min_length=1, max_length=64)]
    device_id: DeviceId
    firmware_hash: Hex64 | None = None

    @field_validator("firmware_hash", mode="before")
    @classmethod
    def _no_null_on_the_wire(cls, value: object, info: ValidationInfo) -> object:
        # A node without measured boot omits the key (seed 001); JSON ``null`` would be a
        # second spelling of "no hash", so the wire refuses it. Python callers may pass None.
        if value is None and info.mode == "json":
            raise ValueError("omit firmware_hash when the node has no measured boot, not null")
        return value


class TelemetryMessage(_Message):
    """One numeric reading."""

    device_id: DeviceId
    metric: Token
    value: float
    unit: Annotated[str, Field(min_length=1, max_length=16)]


class AlertMessage(_Message):
    """A device-raised alert, forwarded verbatim to the CPS alert stream."""

    device_id: DeviceId
    type: Token
    severity: Severity
    event_details: Annotated[str, Field(max_length=1024)]


class BadgeEvent(_Message):
    """An RFID badge read at a reader or door."""

    device_id: DeviceId
    uid: Annotated[str, Field(pattern=BADGE_UID_PATTERN)]
    event: Literal["badge_read"]


class AttestationResponse(_Message):
    """Device reply to a challenge: signature over ``nonce || firmware_hash`` (DESIGN.md)."""

    device_id: DeviceId
    nonce: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    firmware_hash: Hex64
    signature: Annotated[str, Field(min_length=1, max_length=256)]
    certificate: Annotated[str, Field(min_length=1, max_length=3072)]


class CommandMessage(_Message):
    """Backend -> door: a lock verb."""

    verb: CommandVerb
    request_id: Annotated[str, Field(min_length=1, max_length=64)]
    issued_at: Rfc3339
    duration_s: Annotated[int, Field(ge=1, le=3600)] | None = None


class AttestationRequest(_Message):
    """Backend -> device: a challenge nonce."""

    nonce: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    issued_at: Rfc3339
    expires_in_s: Annotated[int, Field(ge=1, le=3600)]


UpstreamMessage = StatusMessage | TelemetryMessage | AlertMessage | BadgeEvent | AttestationResponse
DownstreamMessage = CommandMessage | AttestationRequest

MODEL_BY_KIND: dict[MessageKind, type[_Message]] = {
    MessageKind.STATUS: StatusMessage,
    MessageKind.TELEMETRY: TelemetryMessage,
    MessageKind.ALERTS: AlertMessage,
    MessageKind.BADGE_EVENT: BadgeEvent,
    MessageKind.ATTESTATION_RESPONSE: AttestationResponse,
    MessageKind.COMMAND: CommandMessage,
    MessageKind.ATTESTATION_REQUEST: AttestationRequest,
}
KIND_BY_MODEL = {model: kind for kind, model in MODEL_BY_KIND.items()}

_REASON_BY_ERROR = {
    "extra_forbidden": RejectReason.UNKNOWN_FIELD,
    "missing": RejectReason.MISSING_FIELD,
    "finite_number": RejectReason.NON_FINITE,
    "json_invalid": RejectReason.NOT_JSON,
    "model_type": RejectReason.NOT_OBJECT,
    "model_attributes_type": RejectReason.NOT_OBJECT,
}


def _violation(error: ValidationError) -> ContractViolation:
    first = error.errors(include_url=False)[0]
    field = ".".join(str(part) for part in first["loc"])
    kind = first["type"]
    reason = _REASON_BY_ERROR.get(kind)
    if reason is None:
        reason = RejectReason.WRONG_TYPE if kind.endswith("_type") else RejectReason.BAD_VALUE
    shown = first.get("input")
    detail = first["msg"]
    if reason not in (RejectReason.MISSING_FIELD, RejectReason.NOT_OBJECT):
        detail = f"{detail}, got {json.dumps(shown, default=str)[:80]}"
    return ContractViolation(reason, detail, field)


def decode_payload(kind: MessageKind, payload: bytes) -> _Message:
    """Parse and validate one payload of ``kind``; every failure is a ContractViolation.

    Order: size, nesting depth (before any parser recurses), schema (pydantic, strict),
    then duplicate keys (pydantic keeps the last of two equal keys without a word).

    The duplicate check is skipped when it cannot find anything: a validated payload is a
    flat object (every field is a scalar), so it has (commas outside strings + 1) keys, at
    most ``count(",") + 1``; when that equals the number of distinct fields pydantic saw,
    no key repeats. This keeps a second parse off the telemetry hot path.
    """
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractViolation(
            RejectReason.OVERSIZE, f"payload is {len(payload)} bytes, limit {MAX_PAYLOAD_BYTES}"
        )
    check_depth(payload)
    model = MODEL_BY_KIND[kind]
    try:
        message = model.model_validate_json(payload, strict=True)
    except ValidationError as error:
        violation = _violation(error)
        if violation.reason is RejectReason.NOT_JSON:
            raise _json_violation(payload, violation) from None
        raise violation from None
    if payload.count(b",") + 1 != len(message.model_fields_set):
        strict_parse(payload)  # a repeated key, or commas inside strings: parse to tell
    return message


def _json_violation(payload: bytes, fallback: ContractViolation) -> ContractViolation:
    """Say *why* pydantic found no JSON: the standard parser names NaN, bad UTF-8, etc."""
    try:
        parsed = strict_parse(payload)
    except ContractViolation as violation:
        return violation
    if not isinstance(parsed, dict):
        return ContractViolation(RejectReason.NOT_OBJECT, "payload is not a JSON object")
    # Valid for Python, not for pydantic (e.g. a lone UTF-16 surrogate escape).
    return fallback


def decode_upstream(topic: str, payload: bytes) -> tuple[Topic, UpstreamMessage]:
    """Validate a device -> backend message: topic id, size, JSON, schema, id agreement.

    The topic's device id is checked first (seed 001); then the payload; then the payload's
    ``device_id`` must equal the topic's, since the topic is the identity the broker's ACL
    pinned to the client certificate.
    """
    parsed = parse_topic(topic)
    if not parsed.kind.upstream:
        raise ContractViolation(
            RejectReason.UNKNOWN_TOPIC, f"{parsed.kind.value} flows backend -> device only"
        )
    message = decode_payload(parsed.kind, payload)
    device_id = getattr(message, "device_id", None)
    if device_id != parsed.device_id:
        raise ContractViolation(
            RejectReason.DEVICE_ID_MISMATCH,
            f"payload device_id {device_id!r} differs from topic id {parsed.device_id!r}",
            "device_id",
        )
    return parsed, message  # type: ignore[return-value]


def encode(message: BaseModel) -> bytes:
    """Compact JSON, without unset optional fields (the contract's payloads omit them)."""
    return message.model_dump_json(exclude_none=True).encode()


def now_rfc3339() -> str:
    """The current UTC time as RFC 3339 with a ``Z`` suffix."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
