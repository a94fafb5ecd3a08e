"""What travels on the federation mesh, and the pure rules around it (no I/O).

Subjects (DESIGN.md "Federation subjects", seed 000 for IOC sharing and audit)::

    aurora.federation.health.<site_id>    health gossip, core NATS (a stale heartbeat is noise)
    aurora.alerts.federation.<severity>   federated alerts        } captured by the
    aurora.ioc_sharing                    shared indicators       } per-site JetStream
    aurora.audit                          cross-site audit events } stream AURORA

Every JetStream message carries ``Nats-Msg-Id`` = ``<origin_site>:<id>`` so a retried
publish is dropped by the stream itself, and the receiver dedups again on a hash of
(origin_site, origin id) so a replay outside the stream's duplicate window is harmless.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Protocol, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from backend.contract import Severity
from backend.federation.errors import FederationMessageError

HEALTH_SUBJECT_PREFIX = "aurora.federation.health"
HEALTH_SUBJECT_WILDCARD = f"{HEALTH_SUBJECT_PREFIX}.*"
ALERT_SUBJECT_PREFIX = "aurora.alerts.federation"
IOC_SUBJECT = "aurora.ioc_sharing"
AUDIT_SUBJECT = "aurora.audit"
#: What the per-site stream AURORA captures: everything that must survive a partition.
STREAM_SUBJECTS = (f"{ALERT_SUBJECT_PREFIX}.>", IOC_SUBJECT, AUDIT_SUBJECT)

SiteId = str
_SITE_ID = r"^[a-z0-9][a-z0-9_-]{0,31}$"  # the pattern of Settings.site_id


def health_subject(site_id: str) -> str:
    """``aurora.federation.health.<site_id>``."""
    return f"{HEALTH_SUBJECT_PREFIX}.{site_id}"


def alert_subject(severity: Severity) -> str:
    """``aurora.alerts.federation.<severity>``."""
    return f"{ALERT_SUBJECT_PREFIX}.{severity.value}"


def should_federate(severity: Severity | str, min_severity: Severity | str) -> bool:
    """True when an alert of ``severity`` is at or above ``min_severity`` (default high)."""
    return Severity(severity).rank >= Severity(min_severity).rank


def dedup_key(origin_site: str, origin_id: str) -> str:
    """The receiver's idempotency key: sha256 (hex) of the pair (origin_site, origin_id).

    The pair is hashed as a JSON array so no choice of ids can make two pairs collide.
    """
    pair = json.dumps([origin_site, origin_id], separators=(",", ":"))
    return hashlib.sha256(pair.encode()).hexdigest()


def nats_msg_id(origin_site: str, origin_id: str) -> str:
    """``Nats-Msg-Id`` header value: JetStream drops a retried publish within its window."""
    return f"{origin_site}:{origin_id}"


# --------------------------------------------------------------------------- IOCs

#: IOC types the normaliser recognises by shape, most specific first.
_HEX_TYPES = {32: "md5", 40: "sha1", 64: "sha256"}
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", re.I)
_TYPE_ALIASES = {
    "ipv4": "ip",
    "ipv6": "ip",
    "ip_address": "ip",
    "ip-dst": "ip",
    "ip-src": "ip",
    "hostname": "domain",
    "fqdn": "domain",
    "uri": "url",
    "hash": "hash",
    "sha-256": "sha256",
    "sha-1": "sha1",
    "e-mail": "email",
}
_KNOWN_TYPES = {"ip", "domain", "url", "md5", "sha1", "sha256", "email", "hash", "cidr"}
_TYPE_KEYS = ("type", "ioc_type", "kind", "indicator_type")
_VALUE_KEYS = ("value", "indicator", "ioc", "observable")
#: A bound so a hostile peer cannot make one alert carry megabytes of indicators.
MAX_IOCS = 256
MAX_IOC_VALUE = 2048


def _canonical_type(raw: str) -> str:
    name = raw.strip().lower()
    return _TYPE_ALIASES.get(name, name) or "unknown"


def infer_ioc_type(value: str) -> str:
    """Guess an indicator's type from its shape (ip, cidr, url, email, hash, domain)."""
    text = value.strip()
    try:
        ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        return "ip"
    if "/" in text and "://" not in text:
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            pass
        else:
            return "cidr"
    if "://" in text:
        return "url"
    if _EMAIL.match(text):
        return "email"
    if _HEX.match(text) and len(text) in _HEX_TYPES:
        return _HEX_TYPES[len(text)]
    if _DOMAIN.match(text):
        return "domain"
    return "unknown"


def _canonical_value(ioc_type: str, value: str) -> str:
    text = value.strip()
    # Case carries no meaning in these, so one spelling makes equal IOCs compare equal.
    if ioc_type in {"domain", "email", "md5", "sha1", "sha256", "hash"}:
        return text.lower()
    if ioc_type == "ip":
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            return text
    return text


def _one_ioc(item: object) -> dict[str, str] | None:
    ioc_type: str | None = None
    value: object = None
    if isinstance(item, str):
        prefix, sep, rest = item.partition(":")
        # "ip:1.2.3.4" names its type; "http://..." and IPv6 addresses do not.
        if sep and _canonical_type(prefix) in _KNOWN_TYPES and not rest.startswith("//"):
            ioc_type, value = _canonical_type(prefix), rest
        else:
            value = item
    elif isinstance(item, Mapping):
        type_key = next((k for k in _TYPE_KEYS if k in item), None)
        value_key = next((k for k in _VALUE_KEYS if k in item), None)
        if value_key is not None:
            value = item[value_key]
            if type_key is not None and isinstance(item[type_key], str):
                ioc_type = _canonical_type(item[type_key])
            elif type_key is None and isinstance(value, str):
                # {"value": "ip:1.2.3.4"} (how the local alert path stores a typed string)
                # names its type exactly as the bare string would.
                return _one_ioc(value)
        elif len(item) == 1 and type_key is None:  # {"ip": "1.2.3.4"}
            ((key, value),) = item.items()
            ioc_type = _canonical_type(str(key))
    elif (
        isinstance(item, Sequence)
        and not isinstance(item, bytes | bytearray)
        and len(item) == 2
        and all(isinstance(part, str) for part in item)
    ):  # ["ip", "1.2.3.4"]
        ioc_type, value = _canonical_type(item[0]), item[1]
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return None
    text = str(value).strip()
    if not text or len(text) > MAX_IOC_VALUE:
        return None
    if ioc_type is None or ioc_type == "unknown":
        ioc_type = infer_ioc_type(text)
    return {"type": ioc_type, "value": _canonical_value(ioc_type, text)}


def normalize_iocs(raw: object) -> list[dict[str, str]]:
    """IOCs in the one canonical shape ``[{"type": ..., "value": ...}]``.

    Accepts what peers and firmware send: a single string or dict, or a list mixing strings
    (``"1.2.3.4"``, ``"domain:evil.example"``), dicts (``{"type", "value"}``, alias keys,
    ``{"ip": "1.2.3.4"}``) and ``[type, value]`` pairs. Types are inferred from the value
    when absent, values canonicalised (lower-case hashes/domains, compressed IPv6), empty
    or unreadable entries dropped, duplicates removed keeping first-seen order, and the
    list bounded to :data:`MAX_IOCS`.
    """
    if raw is None:
        return []
    items: Iterable[object]
    if isinstance(raw, str | Mapping):
        items = [raw]
    elif isinstance(raw, Iterable) and not isinstance(raw, bytes | bytearray):
        items = raw
    else:
        return []
    result: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for item in items:
        ioc = _one_ioc(item)
        if ioc is None:
            continue
        key = (ioc["type"], ioc["value"])
        if key in seen:
            continue
        seen.add(key)
        result.append(ioc)
        if len(result) >= MAX_IOCS:
            break
    return result


# --------------------------------------------------------------------------- payloads


#: Indicators as they travel: whatever a peer sends, in :func:`normalize_iocs`' shape.
Iocs = Annotated[list[dict[str, str]], BeforeValidator(normalize_iocs)]


class _Wire(BaseModel):
    # extra="ignore": a newer peer may add fields; an older one must still be understood.
    model_config = ConfigDict(frozen=True, extra="ignore")


class HealthPayload(_Wire):
    """A site's heartbeat on ``aurora.federation.health.<site_id>``."""

    kind: Literal["health"] = "health"
    site_id: str = Field(pattern=_SITE_ID)
    site_name: str = Field("", max_length=128)
    sent_at: datetime
    jetstream_domain: str | None = Field(None, max_length=64)
    nats_connected: bool = True
    messages_published: int = 0
    alerts_received: int = 0
    uptime_s: float = 0.0

    @field_validator("sent_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)


class FederatedAlert(_Wire):
    """An alert stamped with its origin (``build_federated_alert``), as it travels."""

    kind: Literal["alert"] = "alert"
    origin_site: str = Field(pattern=_SITE_ID)
    # Bounds of the backend's alerts table, so a peer's alert always fits the row.
    origin_alert_id: str = Field(min_length=1, max_length=64)
    type: str = Field(min_length=1, max_length=64)
    severity: Severity
    title: str = Field(max_length=256)
    description: str = Field("", max_length=4096)
    device_id: str | None = Field(None, max_length=64)
    iocs: Iocs = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    federated_at: datetime

    @property
    def dedup_key(self) -> str:
        """Receiver idempotency key (hash of origin site and origin alert id)."""
        return dedup_key(self.origin_site, self.origin_alert_id)

    @property
    def msg_id(self) -> str:
        """``Nats-Msg-Id`` for this alert."""
        return nats_msg_id(self.origin_site, self.origin_alert_id)

    @property
    def subject(self) -> str:
        """The subject it is published on."""
        return alert_subject(self.severity)


class IocShare(_Wire):
    """Indicators one site shares with its peers on ``aurora.ioc_sharing``."""

    #: The subject it is published on (one for every share).
    subject: ClassVar[str] = IOC_SUBJECT
    kind: Literal["ioc_share"] = "ioc_share"
    origin_site: str = Field(pattern=_SITE_ID)
    share_id: str = Field(min_length=1, max_length=128)
    iocs: Iocs
    context: str = Field("", max_length=512)
    shared_at: datetime

    @property
    def msg_id(self) -> str:
        """``Nats-Msg-Id`` for this share (kind-qualified: a share often reuses an alert id)."""
        return nats_msg_id(self.origin_site, f"ioc:{self.share_id}")


class FederatedAudit(_Wire):
    """A cross-site audit event on ``aurora.audit`` (seed 000 ``AURORA.audit``)."""

    #: The subject it is published on (one for every event).
    subject: ClassVar[str] = AUDIT_SUBJECT
    kind: Literal["audit"] = "audit"
    origin_site: str = Field(pattern=_SITE_ID)
    event_id: str = Field(min_length=1, max_length=128)
    type: str = Field(min_length=1, max_length=64)
    data: dict[str, Any] = Field(default_factory=dict)
    at: datetime

    @property
    def msg_id(self) -> str:
        """``Nats-Msg-Id`` for this event (kind-qualified, like the share's)."""
        return nats_msg_id(self.origin_site, f"audit:{self.event_id}")


MeshMessage = FederatedAlert | IocShare | FederatedAudit
_W = TypeVar("_W", bound=_Wire)


class AlertLike(Protocol):
    """What ``build_federated_alert`` reads from a local alert record.

    ``id`` may be a str or UUID and ``severity`` a Severity or its value: both are
    converted, so the backend's record type needs no adapter.
    """

    @property
    def id(self) -> Any: ...
    @property
    def type(self) -> str: ...
    @property
    def severity(self) -> Any: ...
    @property
    def title(self) -> str: ...
    @property
    def description(self) -> str | None: ...
    @property
    def device_id(self) -> str | None: ...
    @property
    def iocs(self) -> Any: ...
    @property
    def created_at(self) -> datetime: ...


def build_federated_alert(
    alert: AlertLike, origin_site: str, *, now: datetime | None = None
) -> FederatedAlert:
    """Stamp a local alert with its origin, ready to publish (seed 002)."""
    created = alert.created_at if alert.created_at.tzinfo else alert.created_at.replace(tzinfo=UTC)
    details = getattr(alert, "details", None)
    return FederatedAlert(
        origin_site=origin_site,
        origin_alert_id=str(alert.id),
        type=alert.type,
        severity=Severity(alert.severity),
        title=alert.title,
        description=alert.description or "",
        device_id=alert.device_id,
        iocs=normalize_iocs(alert.iocs),
        details=dict(details) if isinstance(details, Mapping) else {},
        created_at=created,
        federated_at=now or datetime.now(UTC),
    )


def encode_message(message: BaseModel) -> bytes:
    """Compact JSON bytes of a mesh message."""
    return message.model_dump_json().encode()


def decode_mesh_message(subject: str, data: bytes) -> MeshMessage:
    """Parse a JetStream federation message by its subject; raises FederationMessageError."""
    model: type[FederatedAlert] | type[IocShare] | type[FederatedAudit]
    if subject.startswith(ALERT_SUBJECT_PREFIX + "."):
        model = FederatedAlert
    elif subject == IOC_SUBJECT:
        model = IocShare
    elif subject == AUDIT_SUBJECT:
        model = FederatedAudit
    else:
        raise FederationMessageError(subject, "not a federation subject")
    parsed = _parse(model, subject, data)
    if isinstance(parsed, FederatedAlert) and subject != parsed.subject:
        raise FederationMessageError(
            subject, f"severity {parsed.severity.value!r} does not match the subject"
        )
    return parsed


def decode_health(data: bytes) -> HealthPayload:
    """Parse a heartbeat; raises FederationMessageError."""
    return _parse(HealthPayload, HEALTH_SUBJECT_WILDCARD, data)


def _parse(model: type[_W], subject: str, data: bytes) -> _W:
    """``model`` from JSON ``data``; the first problem as a FederationMessageError."""
    try:
        return model.model_validate(json.loads(data))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise FederationMessageError(subject, f"not JSON: {error}") from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "payload"
        raise FederationMessageError(subject, f"{where}: {first['msg']}") from None
