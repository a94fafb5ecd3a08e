"""The attestation signature of DESIGN.md: ECDSA P-256 / SHA-256 over ``nonce || firmware_hash``.

Devices (simulated or bridged) sign with :func:`sign_attestation`; the backend checks with
:func:`signature_valid`. Certificate chain and validity checks are the backend's job.
"""

from __future__ import annotations

import base64
import binascii

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from backend.contract.messages import AttestationResponse


def signed_bytes(nonce: str, firmware_hash: str) -> bytes:
    """The exact bytes a device signs: ASCII ``nonce`` followed by ASCII ``firmware_hash``."""
    return (nonce + firmware_hash).encode("ascii")


def sign_attestation(
    key: ec.EllipticCurvePrivateKey,
    certificate_pem: str,
    device_id: str,
    nonce: str,
    firmware_hash: str,
) -> AttestationResponse:
    """Build the device's attestation response to ``nonce``."""
    signature = key.sign(signed_bytes(nonce, firmware_hash), ec.ECDSA(hashes.SHA256()))
    return AttestationResponse(
        device_id=device_id,
        nonce=nonce,
        firmware_hash=firmware_hash,
        signature=base64.b64encode(signature).decode("ascii"),
        certificate=certificate_pem,
    )


def signature_valid(response: AttestationResponse, certificate: x509.Certificate) -> bool:
    """True when ``response.signature`` verifies under the certificate's P-256 public key."""
    public_key = certificate.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        return False
    try:
        signature = base64.b64decode(response.signature, validate=True)
        public_key.verify(
            signature,
            signed_bytes(response.nonce, response.firmware_hash),
            ec.ECDSA(hashes.SHA256()),
        )
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True
