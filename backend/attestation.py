"""Remote attestation: challenges out, responses verified (DESIGN.md, attestation shapes).

:func:`verify_response` is the pure verifier. Its order of checks and verdicts:

1. nonce known, issued to this device, unused, unexpired — unknown or expired -> ``expired``;
   reused -> ``failed`` ("replayed nonce"); issued to another device -> ``failed``;
2. certificate parses, chains to the site CA and is inside its validity window -> else
   ``expired``; its CN equals the device id -> else ``failed``;
3. signature valid over ``nonce || firmware_hash`` -> else ``failed``;
4. reported hash equals the device's trusted baseline -> else ``failed``;
otherwise ``verified``.

:class:`AttestationService` issues challenges (store + MQTT publish) and applies verdicts
(result row, device status, critical alert and risk bump on failure).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.alerts import AlertService
from backend.contract import (
    AttestationRequest,
    AttestationResponse,
    MessageKind,
    Severity,
    topic_for,
)
from backend.contract import encode as encode_message
from backend.contract.attestation import signature_valid
from backend.errors import DeviceNotRegistered, StartupError
from backend.store import (
    AttestationChallenge,
    AttestationResult,
    AttestationStatus,
    Device,
    as_utc,
    iso,
    utcnow,
)

Publisher = Callable[[str, bytes, int], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Challenge:
    """What the verifier needs to know about the nonce a response quotes."""

    nonce: str
    device_id: str
    issued_at: datetime
    expires_at: datetime
    used_at: datetime | None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of verifying one response."""

    status: AttestationStatus
    reason: str

    @property
    def ok(self) -> bool:
        """True for ``verified``."""
        return self.status is AttestationStatus.VERIFIED


def _issued_by(certificate: x509.Certificate, ca: x509.Certificate) -> bool:
    if certificate.issuer != ca.subject:
        return False
    key = ca.public_key()
    algorithm = certificate.signature_hash_algorithm
    if algorithm is None:
        return False
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(
                certificate.signature, certificate.tbs_certificate_bytes, ec.ECDSA(algorithm)
            )
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(
                certificate.signature,
                certificate.tbs_certificate_bytes,
                padding.PKCS1v15(),
                algorithm,
            )
        else:
            return False
    except InvalidSignature:
        return False
    return True


def verify_response(
    response: AttestationResponse,
    challenge: Challenge | None,
    baseline: str | None,
    ca: x509.Certificate | None,
    now: datetime,
) -> Verdict:
    """Decide the attestation status of ``response`` (pure; see the module docstring)."""
    expired, failed = AttestationStatus.EXPIRED, AttestationStatus.FAILED
    if challenge is None:
        return Verdict(expired, "unknown nonce: no challenge was issued with it")
    if challenge.device_id != response.device_id:
        return Verdict(failed, f"nonce was issued to {challenge.device_id}, not this device")
    if challenge.used_at is not None:
        return Verdict(failed, "replayed nonce: this challenge was already answered")
    if now > as_utc(challenge.expires_at):
        return Verdict(expired, f"challenge expired at {iso(challenge.expires_at)}")
    try:
        certificate = x509.load_pem_x509_certificate(response.certificate.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return Verdict(expired, "certificate is not a readable PEM certificate")
    if ca is None:
        return Verdict(expired, "no site CA configured to check the certificate against")
    if not _issued_by(certificate, ca):
        return Verdict(expired, "certificate does not chain to the site CA")
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        return Verdict(
            expired,
            f"certificate valid {iso(certificate.not_valid_before_utc)} .. "
            f"{iso(certificate.not_valid_after_utc)}, not now",
        )
    common_names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if [attribute.value for attribute in common_names] != [response.device_id]:
        return Verdict(failed, "certificate CN does not name this device")
    if not signature_valid(response, certificate):
        return Verdict(failed, "signature does not verify over nonce || firmware_hash")
    if baseline is None:
        return Verdict(failed, "device has no trusted firmware baseline to compare with")
    if response.firmware_hash != baseline:
        return Verdict(failed, "firmware hash differs from the trusted baseline")
    return Verdict(AttestationStatus.VERIFIED, "firmware hash matches the trusted baseline")


def load_ca(path: Path | None) -> x509.Certificate | None:
    """Read the site CA certificate (None when not configured)."""
    if path is None:
        return None
    try:
        return x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError) as error:
        raise StartupError(
            f"cannot read the site CA certificate {path}: {error}; check AURORA_MQTT_CA"
        ) from error


@dataclass(frozen=True, slots=True)
class IssuedChallenge:
    """A challenge sent to a device (the API's answer)."""

    device_id: str
    nonce: str
    issued_at: datetime
    expires_at: datetime
    topic: str

    def as_json(self) -> dict[str, str | None]:
        """API shape."""
        return {
            "device_id": self.device_id,
            "nonce": self.nonce,
            "issued_at": iso(self.issued_at),
            "expires_at": iso(self.expires_at),
            "topic": self.topic,
        }


class AttestationService:
    """Issues challenges and records verdicts for one site."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        alerts: AlertService,
        ca: x509.Certificate | None,
        expires_in_s: int,
        failure_risk_bump: float,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._alerts = alerts
        #: The site CA device certificates must chain to (set at startup).
        self.ca = ca
        self._expires_in_s = expires_in_s
        self._risk_bump = failure_risk_bump

    async def issue_challenge(self, device_id: str, publish: Publisher) -> IssuedChallenge:
        """Store a fresh nonce for ``device_id`` and publish the request (QoS 1)."""
        now = utcnow()
        nonce = secrets.token_hex(16)
        expires_at = now + timedelta(seconds=self._expires_in_s)
        async with self._sessionmaker.begin() as session:
            if await session.get(Device, device_id) is None:
                raise DeviceNotRegistered(device_id)
            session.add(
                AttestationChallenge(
                    nonce=nonce, device_id=device_id, issued_at=now, expires_at=expires_at
                )
            )
        request = AttestationRequest(
            nonce=nonce,
            issued_at=iso(now) or "",
            expires_in_s=self._expires_in_s,
        )
        topic = topic_for(MessageKind.ATTESTATION_REQUEST, device_id)
        await publish(topic, encode_message(request), 1)
        return IssuedChallenge(device_id, nonce, now, expires_at, topic)

    async def handle_response(self, response: AttestationResponse) -> Verdict:
        """Verify ``response``, store the result, update the device, alert on failure."""
        now = utcnow()
        async with self._sessionmaker.begin() as session:
            row = await session.get(AttestationChallenge, response.nonce)
            challenge = (
                None
                if row is None
                else Challenge(row.nonce, row.device_id, row.issued_at, row.expires_at, row.used_at)
            )
            device = await session.get(Device, response.device_id)
            baseline = device.firmware_hash if device is not None else None
            verdict = verify_response(response, challenge, baseline, self.ca, now)
            if row is not None and row.used_at is None and row.device_id == response.device_id:
                row.used_at = now
            session.add(
                AttestationResult(
                    device_id=response.device_id,
                    nonce=response.nonce,
                    status=verdict.status,
                    reason=verdict.reason[:256],
                    reported_hash=response.firmware_hash,
                    expected_hash=baseline,
                    checked_at=now,
                )
            )
            if device is not None:
                device.attestation_status = verdict.status
                if not verdict.ok:
                    bump_risk(device, self._risk_bump)
        if not verdict.ok:
            await self._alerts.raise_alert(
                "attestation_failed",
                Severity.CRITICAL,
                f"Attestation {verdict.status.value} for {response.device_id}",
                description=verdict.reason,
                device_id=response.device_id,
                details={
                    "status": verdict.status.value,
                    "nonce": response.nonce,
                    "reported_hash": response.firmware_hash,
                    "expected_hash": baseline,
                },
            )
        return verdict

    async def results(self, device_id: str, limit: int = 50) -> list[dict[str, object]]:
        """Stored results for ``device_id``, newest first."""
        async with self._sessionmaker() as session:
            rows = await session.scalars(
                select(AttestationResult)
                .where(AttestationResult.device_id == device_id)
                .order_by(AttestationResult.id.desc())
                .limit(limit)
            )
            return [
                {
                    "device_id": row.device_id,
                    "nonce": row.nonce,
                    "status": row.status.value,
                    "reason": row.reason,
                    "reported_hash": row.reported_hash,
                    "expected_hash": row.expected_hash,
                    "checked_at": iso(row.checked_at),
                }
                for row in rows
            ]


def bump_risk(device: Device, amount: float) -> None:
    """Raise a device's risk score by ``amount`` (capped at 100)."""
    device.risk_score = min(100.0, (device.risk_score or 0.0) + amount)


__all__ = [
    "AttestationService",
    "Challenge",
    "IssuedChallenge",
    "Verdict",
    "bump_risk",
    "load_ca",
    "verify_response",
]
