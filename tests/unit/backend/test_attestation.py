"""The attestation verifier, with keys and certificates made here (no servers)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from backend.attestation import Challenge, verify_response
from backend.contract.attestation import sign_attestation
from backend.store import AttestationStatus

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
DEVICE = "stm32f401-door-01"
BASELINE = "ab" * 32
NONCE = "0123456789abcdef0123456789abcdef"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str = "aurora-bench CA") -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=30))
        .not_valid_after(NOW + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_device(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    cn: str = DEVICE,
    not_before: dt.datetime = NOW - dt.timedelta(days=1),
    not_after: dt.datetime = NOW + dt.timedelta(days=365),
) -> tuple[ec.EllipticCurvePrivateKey, str]:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    return make_ca()


def challenge(**changes: object) -> Challenge:
    values: dict[str, object] = {
        "nonce": NONCE,
        "device_id": DEVICE,
        "issued_at": NOW - dt.timedelta(seconds=5),
        "expires_at": NOW + dt.timedelta(seconds=25),
        "used_at": None,
    }
    values.update(changes)
    return Challenge(**values)  # type: ignore[arg-type]


def test_good_response_is_verified(ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]) -> None:
    key, pem = make_device(ca)
    response = sign_attestation(key, pem, DEVICE, NONCE, BASELINE)
    verdict = verify_response(response, challenge(), BASELINE, ca[0], NOW)
    assert verdict.status is AttestationStatus.VERIFIED
    assert verdict.ok


@pytest.mark.parametrize(
    ("case", "status", "reason_part"),
    [
        ("unknown nonce", AttestationStatus.EXPIRED, "unknown nonce"),
        ("expired challenge", AttestationStatus.EXPIRED, "expired"),
        ("replayed nonce", AttestationStatus.FAILED, "replayed"),
        ("nonce of another device", AttestationStatus.FAILED, "issued to"),
        ("expired certificate", AttestationStatus.EXPIRED, "certificate valid"),
        ("not yet valid certificate", AttestationStatus.EXPIRED, "certificate valid"),
        ("wrong CA", AttestationStatus.EXPIRED, "chain"),
        ("garbage certificate", AttestationStatus.EXPIRED, "PEM"),
        ("CN of another device", AttestationStatus.FAILED, "CN"),
        ("bad signature", AttestationStatus.FAILED, "signature"),
        ("other firmware", AttestationStatus.FAILED, "baseline"),
        ("no baseline", AttestationStatus.FAILED, "no trusted firmware baseline"),
    ],
)
def test_every_failure_has_its_status_and_reason(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    case: str,
    status: AttestationStatus,
    reason_part: str,
) -> None:
    key, pem = make_device(ca)
    the_challenge: Challenge | None = challenge()
    baseline: str | None = BASELINE
    reported = BASELINE
    signing_key = key
    if case == "unknown nonce":
        the_challenge = None
    elif case == "expired challenge":
        the_challenge = challenge(expires_at=NOW - dt.timedelta(seconds=1))
    elif case == "replayed nonce":
        the_challenge = challenge(used_at=NOW - dt.timedelta(seconds=1))
    elif case == "nonce of another device":
        the_challenge = challenge(device_id="someone-else")
    elif case == "expired certificate":
        key, pem = make_device(
            ca, not_before=NOW - dt.timedelta(days=10), not_after=NOW - dt.timedelta(days=1)
        )
        signing_key = key
    elif case == "not yet valid certificate":
        key, pem = make_device(ca, not_before=NOW + dt.timedelta(days=1))
        signing_key = key
    elif case == "wrong CA":
        key, pem = make_device(make_ca("aurora-bench CA"))  # same name, other key
        signing_key = key
    elif case == "garbage certificate":
        pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    elif case == "CN of another device":
        key, pem = make_device(ca, cn="stm32f401-door-99")
        signing_key = key
    elif case == "bad signature":
        signing_key = ec.generate_private_key(ec.SECP256R1())
    elif case == "other firmware":
        reported = "cd" * 32
    elif case == "no baseline":
        baseline = None
    response = sign_attestation(signing_key, pem, DEVICE, NONCE, reported)
    verdict = verify_response(response, the_challenge, baseline, ca[0], NOW)
    assert verdict.status is status, verdict
    assert reason_part in verdict.reason
