"""A device's identity: its id, its ECDSA P-256 key and its certificate (CN = device_id).

In a running bench these come from the bench PKI (``Pki.device(id)``); tests without a PKI
use :func:`self_signed_identity`. The key is parsed lazily: a fleet of thousands only pays
for it when a node is actually challenged.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from backend.contract import validate_device_id


@dataclass(frozen=True)
class DeviceIdentity:
    """``device_id`` plus its certificate and key, as PEM text.

    ``cert_path``/``key_path`` are set when the material lives in files (an MQTT link hands
    paths to ``ssl.SSLContext.load_cert_chain``).
    """

    device_id: str
    certificate_pem: str
    key_pem: str = field(repr=False)
    cert_path: Path | None = None
    key_path: Path | None = None

    def __post_init__(self) -> None:
        validate_device_id(self.device_id)

    @cached_property
    def key(self) -> ec.EllipticCurvePrivateKey:
        """The private key (parsed on first use)."""
        key = serialization.load_pem_private_key(self.key_pem.encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError(f"{self.device_id}: device key is not an EC key")
        return key

    @cached_property
    def certificate(self) -> x509.Certificate:
        """The parsed certificate."""
        return x509.load_pem_x509_certificate(self.certificate_pem.encode())

    @classmethod
    def from_files(cls, device_id: str, cert_path: Path, key_path: Path) -> DeviceIdentity:
        """Load an identity from PEM files (the bench PKI layout)."""
        return cls(
            device_id,
            Path(cert_path).read_text(),
            Path(key_path).read_text(),
            cert_path=Path(cert_path),
            key_path=Path(key_path),
        )


def self_signed_identity(device_id: str, *, days: int = 30) -> DeviceIdentity:
    """A throwaway P-256 identity for tests and offline runs (no CA involved)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return DeviceIdentity(
        device_id,
        cert.public_bytes(serialization.Encoding.PEM).decode(),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    )
