"""The bench PKI: chains, names, validity variants, reuse, and safety across processes."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from backend.contract.attestation import sign_attestation, signature_valid
from bench.errors import PkiError
from bench.pki import CertPair, Pki


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _cn(cert: x509.Certificate) -> str:
    value = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert isinstance(value, str)
    return value


def _key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _matches(pair: CertPair) -> bool:
    public = _cert(pair.cert).public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    return public.public_numbers() == _key(pair.key).public_key().public_numbers()


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki.ensure(tmp_path / "pki")


def test_ca_is_made_once_and_reused(tmp_path: Path) -> None:
    first = Pki.ensure(tmp_path / "pki")
    ca_bytes = first.ca_cert.read_bytes()
    second = Pki.ensure(tmp_path / "pki")
    assert second.ca_cert.read_bytes() == ca_bytes
    assert first.ca_cert == tmp_path / "pki" / "ca.crt"
    assert (tmp_path / "pki" / "ca.key").stat().st_mode & 0o777 == 0o600
    ca = _cert(first.ca_cert)
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca is True


def test_device_cert_chains_to_the_ca_with_cn_device_id(pki: Pki) -> None:
    pair = pki.device("stm32f401-door-01")
    assert pair.cert == pki.root / "devices" / "stm32f401-door-01.crt"
    assert pair.key == pki.root / "devices" / "stm32f401-door-01.key"
    cert = _cert(pair.cert)
    cert.verify_directly_issued_by(_cert(pki.ca_cert))
    assert _cn(cert) == "stm32f401-door-01"
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usages
    assert isinstance(_key(pair.key).curve, ec.SECP256R1)
    assert _matches(pair)
    now = dt.datetime.now(dt.UTC)
    assert cert.not_valid_before_utc <= now <= cert.not_valid_after_utc
    assert pair.key.stat().st_mode & 0o777 == 0o600


def test_device_cert_is_reused_after_the_first_ask(pki: Pki, tmp_path: Path) -> None:
    first = pki.device("esp32s3-env-01").cert.read_bytes()
    assert pki.device("esp32s3-env-01").cert.read_bytes() == first
    reopened = Pki.ensure(tmp_path / "pki")
    assert reopened.device("esp32s3-env-01").cert.read_bytes() == first


def test_device_key_signs_attestations_the_backend_accepts(pki: Pki) -> None:
    pair = pki.device("nrf52840-tag-01")
    pem = pair.cert.read_text()
    response = sign_attestation(_key(pair.key), pem, "nrf52840-tag-01", "ab" * 16, "cd" * 32)
    assert signature_valid(response, _cert(pair.cert))
    other = _cert(pki.device("nrf52840-tag-02").cert)
    assert not signature_valid(response, other)


def test_server_cert_names_loopback(pki: Pki) -> None:
    cert = _cert(pki.server("mosquitto-a").cert)
    cert.verify_directly_issued_by(_cert(pki.ca_cert))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usages


def test_service_cert_cn_is_the_identity(pki: Pki) -> None:
    pair = pki.service("aurora-backend-a")
    assert pair.cert.parent.name == "services"
    assert _cn(_cert(pair.cert)) == "aurora-backend-a"
    assert _matches(pair)


def test_expired_variant_lies_in_the_past(pki: Pki) -> None:
    pair = pki.device_variant("esp32s3-env-01", "expired")
    cert = _cert(pair.cert)
    assert cert.not_valid_after_utc < dt.datetime.now(dt.UTC)
    cert.verify_directly_issued_by(_cert(pki.ca_cert))
    assert _cn(cert) == "esp32s3-env-01"
    assert pair.cert.parent == pki.root / "variants" / "expired"
    # The real device cert is untouched.
    assert _cert(pki.device("esp32s3-env-01").cert).not_valid_after_utc > dt.datetime.now(dt.UTC)


def test_not_yet_valid_variant_starts_in_the_future(pki: Pki) -> None:
    cert = _cert(pki.device_variant("esp32s3-env-01", "not_yet_valid").cert)
    assert cert.not_valid_before_utc > dt.datetime.now(dt.UTC)


def test_wrong_ca_variant_does_not_chain_to_the_site_ca(pki: Pki) -> None:
    pair = pki.device_variant("esp32s3-env-01", "wrong_ca")
    cert = _cert(pair.cert)
    assert _cn(cert) == "esp32s3-env-01"
    with pytest.raises((ValueError, TypeError)):
        cert.verify_directly_issued_by(_cert(pki.ca_cert))
    cert.verify_directly_issued_by(_cert(pki.rogue_ca_cert))
    assert _matches(pair)


def test_revoked_variant_chains_but_is_listed_in_the_crl(pki: Pki) -> None:
    crl = x509.load_pem_x509_crl(pki.crl.read_bytes())
    ca = _cert(pki.ca_cert)
    public = ca.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert crl.is_signature_valid(public)
    assert crl.next_update_utc is not None
    assert crl.next_update_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
    first = _cert(pki.device_variant("esp32s3-env-01", "revoked").cert)
    second = _cert(pki.device_variant("esp32s3-env-02", "revoked").cert)
    first.verify_directly_issued_by(ca)
    assert first.serial_number != second.serial_number
    for cert in (first, second):
        assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    # Asking again gives the same cert (same slot), and real device certs are not listed.
    again = _cert(pki.device_variant("esp32s3-env-01", "revoked").cert)
    assert again.serial_number == first.serial_number
    real = _cert(pki.device("esp32s3-env-01").cert)
    assert crl.get_revoked_certificate_by_serial_number(real.serial_number) is None


@pytest.mark.parametrize("bad", ["", "door/1", "door+1", "door#1", "dööör", "x" * 65])
def test_bad_device_ids_are_refused(pki: Pki, bad: str) -> None:
    with pytest.raises(PkiError, match="does not match"):
        pki.device(bad)
    assert not (pki.root / "devices").exists() or not list((pki.root / "devices").iterdir())


def test_unknown_variant_names_the_choices(pki: Pki) -> None:
    with pytest.raises(PkiError, match="expired, not_yet_valid, wrong_ca, revoked"):
        pki.device_variant("esp32s3-env-01", "stolen")


@pytest.mark.parametrize("bad", ["", "../ca", "a b", ".hidden"])
def test_bad_service_names_are_refused(pki: Pki, bad: str) -> None:
    with pytest.raises(PkiError, match="bad certificate name"):
        pki.service(bad)


def test_corrupt_ca_is_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "pki"
    Pki.ensure(root)
    (root / "ca.key").write_text("garbage")
    with pytest.raises(PkiError, match="delete that directory"):
        Pki.ensure(root)


def test_two_processes_issuing_the_same_devices_agree(tmp_path: Path) -> None:
    root = tmp_path / "pki"
    Pki.ensure(root)
    script = (
        "import sys; from pathlib import Path; from bench.pki import Pki\n"
        "pki = Pki.ensure(Path(sys.argv[1]))\n"
        "for i in range(40): pki.device(f'race-{i}')\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(root)]) for _ in range(3)]
    assert [proc.wait(timeout=120) for proc in procs] == [0, 0, 0]
    pki = Pki.ensure(root)
    for i in range(40):
        pair = pki.device(f"race-{i}")
        assert _matches(pair), f"race-{i}: key and cert from different writers"
    leftovers = [p.name for p in (root / "devices").iterdir() if p.suffix == ".tmp"]
    assert leftovers == []
