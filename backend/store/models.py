"""Tables of the CPS backend (SQLAlchemy 2, the same schema on SQLite and PostgreSQL).

Status columns are database-level enums (a native ENUM on PostgreSQL, a CHECK constraint on
SQLite), so a hostile attestation response can never smuggle an unexpected value in
(seed 001, security notes). The federation package adds its own tables on :class:`Base`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, DateTime, Enum, Float, ForeignKey, Index, String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backend.contract import Severity


class Base(DeclarativeBase):
    """Declarative base shared by every table of one site's database."""


class TrustStatus(StrEnum):
    """Firmware trust of a device (seed 001, ADR 052: trust on first use)."""

    UNKNOWN = "unknown"
    TRUSTED = "trusted"
    DRIFT_DETECTED = "drift_detected"


class AttestationStatus(StrEnum):
    """``attestation_status_enum`` of seed 001."""

    VERIFIED = "verified"
    FAILED = "failed"
    EXPIRED = "expired"


def _enum(enum_cls: type[StrEnum], name: str) -> Enum:
    # Store the *values* ("drift_detected"), not member names, and enforce them in the DB.
    return Enum(
        enum_cls,
        name=name,
        values_callable=lambda members: [member.value for member in members],
        create_constraint=True,
        validate_strings=True,
    )


class Device(Base):
    """A CPS node: auto-registered from its first status (or badge/telemetry) message."""

    __tablename__ = "cps_devices"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_type: Mapped[str | None] = mapped_column(String(64))
    board_family: Mapped[str | None] = mapped_column(String(64))
    firmware_stack: Mapped[str | None] = mapped_column(String(64))
    firmware_version: Mapped[str | None] = mapped_column(String(64))
    #: The trusted baseline recorded on first use.
    firmware_hash: Mapped[str | None] = mapped_column(String(64))
    #: The hash the device reported last (differs from the baseline after drift).
    reported_hash: Mapped[str | None] = mapped_column(String(64))
    trust_status: Mapped[TrustStatus] = mapped_column(
        _enum(TrustStatus, "trust_status_enum"), default=TrustStatus.UNKNOWN
    )
    attestation_status: Mapped[AttestationStatus | None] = mapped_column(
        _enum(AttestationStatus, "attestation_status_enum"), nullable=True
    )
    risk_score: Mapped[float] = mapped_column(Float, default=0.0)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AttestationChallenge(Base):
    """A nonce issued to a device; ``used_at`` is set when a response consumed it."""

    __tablename__ = "attestation_challenges"

    nonce: Mapped[str] = mapped_column(String(32), primary_key=True)
    device_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("cps_devices.device_id"), index=True
    )
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AttestationResult(Base):
    """The verdict on one attestation response."""

    __tablename__ = "attestation_results"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    nonce: Mapped[str] = mapped_column(String(32))
    status: Mapped[AttestationStatus] = mapped_column(
        _enum(AttestationStatus, "attestation_status_enum")
    )
    reason: Mapped[str] = mapped_column(String(256), default="")
    reported_hash: Mapped[str] = mapped_column(String(64))
    expected_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AccessGrant(Base):
    """Which badge UID opens which doors (``["*"]`` = every door)."""

    __tablename__ = "access_grants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    uid: Mapped[str] = mapped_column(String(20), index=True)
    device_ids: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Alert(Base):
    """One alert of the SOC queue, local or federated (``source=federation:<site>``)."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_created_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    type: Mapped[str] = mapped_column(String(64), index=True)
    severity: Mapped[Severity] = mapped_column(_enum(Severity, "severity_enum"))
    title: Mapped[str] = mapped_column(String(256))
    description: Mapped[str] = mapped_column(String(4096), default="")
    device_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    source: Mapped[str] = mapped_column(String(80), default="cps")
    origin_site: Mapped[str | None] = mapped_column(String(64), nullable=True)
    origin_alert_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    dedup_key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    iocs: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
