"""TLS 1.3 session resumption of simulated devices against the site's real Mosquitto.

What a resumed device may do is what its certificate allows (the broker's ACL still sees the
CN kept in the session), a ticket does not survive the broker restart that loads a changed
CRL (a restart without one keeps them: tests/integration/test_reconnect_storm.py), and an
expired certificate can resume until its ticket expires: the window docs/architecture.md
(Security) describes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from backend.contract import MessageKind
from bench.pki import CertPair
from bench.site import RunningBench
from simulators.errors import LinkError
from simulators.links import ReasonCode
from simulators.mqtt_link import MqttLink
from simulators.tls_sessions import TlsSessions

pytestmark = pytest.mark.integration

STATUS = b'{"device_id":"%s"}'


@pytest.fixture(scope="module")
def site(bench_factory) -> RunningBench:
    """Services only (no backend): these tests restart the broker."""
    return bench_factory(["a"], backend=False)


def _link(bench: RunningBench, device_id: str, sessions: TlsSessions, pair: CertPair) -> MqttLink:
    endpoint = bench.site("a").mqtt
    return MqttLink.from_files(
        device_id,
        endpoint.host,
        endpoint.port,
        ca=bench.pki.ca_cert,
        cert=pair.cert,
        key=pair.key,
        sessions=sessions,
        timeout_s=10,
    )


async def _connect(
    bench: RunningBench, device_id: str, sessions: TlsSessions, pair: CertPair | None = None
) -> MqttLink:
    link = _link(bench, device_id, sessions, pair or bench.pki.device(device_id))
    await link.connect(lambda _kind, _payload: None)
    return link


def _authority(bench: RunningBench) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(bench.pki.ca_cert.read_bytes())
    key = serialization.load_pem_private_key(bench.pki.ca_key.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def _short_lived(bench: RunningBench, device_id: str, folder: Path, valid_s: float) -> CertPair:
    """A device certificate of the site CA that expires ``valid_s`` from now."""
    ca_cert, ca_key = _authority(bench)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(seconds=valid_s))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pair = CertPair(folder / f"{device_id}.crt", folder / f"{device_id}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pair


@pytest.fixture
def revoke(site: RunningBench) -> Iterator[object]:
    """``revoke(cert_path)`` adds a certificate to the site CA's CRL (restored afterwards)."""
    crl_path = site.pki.crl
    original = crl_path.read_bytes()

    def add(cert_path: Path) -> None:
        ca_cert, ca_key = _authority(site)
        serial = x509.load_pem_x509_certificate(cert_path.read_bytes()).serial_number
        crl = x509.load_pem_x509_crl(crl_path.read_bytes())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca_cert.subject)
            .last_update(now - dt.timedelta(minutes=5))
            .next_update(now + dt.timedelta(days=30))
        )
        for entry in crl:
            builder = builder.add_revoked_certificate(entry)
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
        signed = builder.sign(ca_key, hashes.SHA256())
        crl_path.write_bytes(signed.public_bytes(serialization.Encoding.PEM))

    try:
        yield add
    finally:
        crl_path.write_bytes(original)


async def test_a_resumed_device_may_publish_only_its_own_topics(site: RunningBench) -> None:
    sessions = TlsSessions()
    first = await _connect(site, "itr-resume-01", sessions)
    assert not first.resumed
    await first.aclose()
    assert len(sessions) == 1  # a ticket was read before the session was kept

    again = await _connect(site, "itr-resume-01", sessions)
    try:
        assert again.resumed
        own = await again.publish(MessageKind.STATUS, STATUS % b"itr-resume-01", 1)
        assert own.accepted
        other = await again.publish(
            MessageKind.STATUS,
            STATUS % b"itr-resume-02",
            1,
            topic="aurora/sensors/itr-resume-02/status",
        )
        assert other.reason_code == ReasonCode.NOT_AUTHORIZED
    finally:
        await again.aclose()
    assert (sessions.counts.resumed, sessions.counts.full) == (1, 1)


async def test_a_revoked_certificate_cannot_ride_a_ticket_from_before_the_restart(
    site: RunningBench, revoke, tmp_path: Path
) -> None:
    sessions = TlsSessions()
    pair = _short_lived(site, "itr-revoked-01", tmp_path, valid_s=3600)
    for device_id, cert in (("itr-revoked-01", pair), ("itr-kept-01", None)):
        link = await _connect(site, device_id, sessions, cert)
        await link.aclose()
    assert len(sessions) == 2

    # Mosquitto reads its crlfile when it starts: revoking means a restart. The bench's
    # broker derives its ticket key from the CRL (bench/services/ticket_keys.py), so the
    # new CRL makes every stored ticket worthless and each device shows its certificate.
    revoke(pair.cert)
    await asyncio.to_thread(site.stop_service, "a", "mosquitto")
    await asyncio.to_thread(site.start_service, "a", "mosquitto")

    with pytest.raises(LinkError):
        await _connect(site, "itr-revoked-01", sessions, pair)
    kept = await _connect(site, "itr-kept-01", sessions)
    await kept.aclose()
    assert not kept.resumed
    assert sessions.counts.offered_not_resumed == 1


async def test_an_expired_certificate_resumes_until_its_ticket_expires(
    site: RunningBench, tmp_path: Path
) -> None:
    # OpenSSL checks a certificate's dates in the full handshake only: a ticket issued
    # while it was valid resumes after it expired, for the ticket's lifetime (7,200 s).
    pair = _short_lived(site, "itr-expiring-01", tmp_path, valid_s=6)
    sessions = TlsSessions()
    link = await _connect(site, "itr-expiring-01", sessions, pair)
    await link.aclose()
    expires = x509.load_pem_x509_certificate(pair.cert.read_bytes()).not_valid_after_utc
    await asyncio.sleep(max(0.0, (expires - dt.datetime.now(dt.UTC)).total_seconds()) + 1.5)

    with pytest.raises(LinkError):  # without a ticket: refused, the certificate expired
        await _connect(site, "itr-expiring-01", TlsSessions(), pair)
    resumed = await _connect(site, "itr-expiring-01", sessions, pair)
    try:
        assert resumed.resumed
    finally:
        await resumed.aclose()
