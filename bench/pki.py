"""The bench PKI: one site CA, broker/service/device certificates, attack variants.

Layout under ``<state-dir>/pki`` (users' scripts rely on ``ca.crt`` and ``devices/``)::

    ca.crt, ca.key                 the CA every broker and backend trusts (key mode 0600)
    servers/<name>.crt|.key        server certs (SAN 127.0.0.1, ::1, localhost)
    services/<name>.crt|.key       client certs of bench services (CN = name)
    devices/<id>.crt|.key          one client cert per device (CN = device_id)
    ca.crl                         the CA's CRL: the serial block of ``revoked`` variants
    variants/<variant>/<id>.crt|.key   expired / not_yet_valid / wrong_ca / revoked certs
    variants/rogue-ca.crt|.key     the untrusted CA that signs ``wrong_ca`` certs

Every key is ECDSA P-256: device keys double as attestation keys (DESIGN.md, attestation
signature). The CA key stays loaded in the :class:`Pki` object so a fleet of 10,000 devices
is issued in seconds. Issuing is safe across processes: an advisory lock serialises writers
and every file lands by atomic rename, so a reader sees either nothing or a whole,
matching cert/key pair.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from backend.contract import ContractViolation, validate_device_id
from bench.errors import PkiError
from bench.file_lock import file_lock

CA_VALIDITY = dt.timedelta(days=3650)
LEAF_VALIDITY = dt.timedelta(days=825)
#: Certificates start slightly in the past so a peer with a lagging clock accepts them.
CLOCK_SKEW = dt.timedelta(minutes=5)
#: ``revoked`` variants take their serial numbers from this reserved block, which the CA's
#: CRL lists from the start: brokers load a CRL only when they start, so a certificate
#: revoked later would not be refused until a restart.
REVOKED_SERIAL_BASE = 0x7A_0000_0000
REVOKED_SLOTS = 1024
CRL_VALIDITY = dt.timedelta(days=3650)
_SERVICE_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


class Variant(StrEnum):
    """Broken device certificates for attack scenarios."""

    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    WRONG_CA = "wrong_ca"
    REVOKED = "revoked"


@dataclass(frozen=True)
class CertPair:
    """A certificate and its private key on disk (both PEM)."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class _Authority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` via a temp file and rename: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "aurora-bench"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _certificate(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
    *,
    ca: bool,
    serial: int | None = None,
) -> x509.CertificateBuilder:
    """What a CA and a leaf certificate share: names, key, validity, and the key usages of
    a P-256 key (a CA signs certificates and CRLs; a leaf signs and agrees TLS keys)."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=not ca,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )


def _make_ca(common_name: str) -> _Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    name = _name(common_name)
    cert = (
        _certificate(name, name, key, now - CLOCK_SKEW, now + CA_VALIDITY, ca=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _Authority(cert, key)


def _load_ca(cert_path: Path, key_path: Path) -> _Authority:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError) as error:
        raise PkiError(
            f"cannot load the CA from {cert_path.parent}: {error}; "
            "delete that directory to let the bench make a new CA"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{key_path} is not an EC private key; delete {cert_path.parent}")
    return _Authority(cert, key)


def _issue(
    authority: _Authority,
    common_name: str,
    *,
    server: bool,
    not_before: dt.datetime,
    not_after: dt.datetime,
    serial: int | None = None,
    peer: bool = False,
    ips: tuple[str, ...] = (),
) -> tuple[bytes, bytes]:
    """A leaf certificate and key (PEM) signed by ``authority``; a ``peer`` server cert may
    also authenticate as a client (NATS cluster routes verify both ends)."""
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    usages = [usage, ExtendedKeyUsageOID.CLIENT_AUTH] if peer and server else [usage]
    builder = (
        _certificate(
            _name(common_name),
            authority.cert.subject,
            key,
            not_before,
            not_after,
            ca=False,
            serial=serial,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                    x509.DNSName("localhost"),
                    *(x509.IPAddress(ipaddress.ip_address(address)) for address in ips),
                ]
            ),
            critical=False,
        )
    cert = builder.sign(authority.key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _make_crl(authority: _Authority) -> bytes:
    """The CA's CRL (PEM): every serial of the reserved ``revoked`` block."""
    now = _now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(authority.cert.subject)
        .last_update(now - CLOCK_SKEW)
        .next_update(now + CRL_VALIDITY)
    )
    for slot in range(REVOKED_SLOTS):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(REVOKED_SERIAL_BASE + slot)
            .revocation_date(now - CLOCK_SKEW)
            .build()
        )
    return builder.sign(authority.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


class Pki:
    """The bench's certificate authority and everything it issues (see the module doc)."""

    def __init__(self, root: Path, authority: _Authority) -> None:
        self.root = root
        self.ca_cert = root / "ca.crt"
        self.ca_key = root / "ca.key"
        #: The CA's CRL (PEM), listing the serials ``revoked`` variants are issued with.
        self.crl = root / "ca.crl"
        self._ca = authority
        self._rogue: _Authority | None = None

    @classmethod
    def ensure(cls, root: Path) -> Pki:
        """Open the PKI at ``root`` (normally ``<state>/pki``), making the CA the first time."""
        root = Path(root).absolute()
        root.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = root / "ca.crt", root / "ca.key"
        with file_lock(root / ".lock"):
            if not cert_path.exists():
                authority = _make_ca("aurora-bench site CA")
                _atomic_write(key_path, _key_pem(authority.key), 0o600)
                _atomic_write(
                    cert_path, authority.cert.public_bytes(serialization.Encoding.PEM), 0o644
                )
            else:
                authority = _load_ca(cert_path, key_path)
            if not (root / "ca.crl").exists():
                _atomic_write(root / "ca.crl", _make_crl(authority), 0o644)
        return cls(root, authority)

    # -- issuing ---------------------------------------------------------------------------

    def server(self, name: str, ips: tuple[str, ...] = ()) -> CertPair:
        """Server cert for a broker (``name`` e.g. ``mosquitto-a``), SAN 127.0.0.1/::1/localhost
        plus ``ips`` (a site in its own network namespace listens on its namespace address;
        such certs live under ``servers-at/<ips>/``)."""
        if ips:
            folder = "servers-at/" + "_".join(str(ipaddress.ip_address(a)) for a in ips)
            return self._pair(folder, _checked_name(name), server=True, ips=ips)
        return self._pair("servers", _checked_name(name), server=True)

    def peer(self, name: str) -> CertPair:
        """Server cert that is also a client cert (serverAuth + clientAuth), e.g. a NATS
        cluster node whose routes verify both ends; SANs as :meth:`server`."""
        return self._pair("peers", _checked_name(name), server=True, peer=True)

    def service(self, name: str) -> CertPair:
        """Client cert with CN = ``name`` (e.g. ``aurora-backend-a``, ``bench-probe``)."""
        return self._pair("services", _checked_name(name), server=False)

    def device(self, device_id: str) -> CertPair:
        """The device's client cert (CN = device_id): issued on first ask, reused after."""
        return self._pair("devices", _checked_device_id(device_id), server=False)

    def device_variant(self, device_id: str, variant: str) -> CertPair:
        """A broken cert for ``device_id``: ``expired``, ``not_yet_valid``, ``wrong_ca`` or
        ``revoked`` (signed by the site CA, serial listed in its CRL)."""
        device_id = _checked_device_id(device_id)
        try:
            kind = Variant(variant)
        except ValueError:
            choices = ", ".join(v.value for v in Variant)
            raise PkiError(
                f"unknown certificate variant {variant!r}; choose one of {choices}"
            ) from None
        now = _now()
        authority = self._ca
        not_before, not_after = now - CLOCK_SKEW, now + LEAF_VALIDITY
        if kind is Variant.EXPIRED:
            not_before, not_after = now - dt.timedelta(days=30), now - dt.timedelta(days=1)
        elif kind is Variant.NOT_YET_VALID:
            not_before, not_after = now + dt.timedelta(days=1), now + dt.timedelta(days=30)
        elif kind is Variant.WRONG_CA:
            authority = self._rogue_ca()
        return self._pair(
            f"variants/{kind.value}",
            device_id,
            server=False,
            authority=authority,
            not_before=not_before,
            not_after=not_after,
            revoked=kind is Variant.REVOKED,
        )

    @property
    def rogue_ca_cert(self) -> Path:
        """The untrusted CA that signs ``wrong_ca`` variants (made on first use)."""
        self._rogue_ca()
        return self.root / "variants" / "rogue-ca.crt"

    # -- internals -------------------------------------------------------------------------

    def _rogue_ca(self) -> _Authority:
        if self._rogue is None:
            folder = self.root / "variants"
            folder.mkdir(exist_ok=True)
            cert_path, key_path = folder / "rogue-ca.crt", folder / "rogue-ca.key"
            with file_lock(self.root / ".lock"):
                if not cert_path.exists():
                    rogue = _make_ca("rogue CA (not trusted by any site)")
                    _atomic_write(key_path, _key_pem(rogue.key), 0o600)
                    _atomic_write(
                        cert_path, rogue.cert.public_bytes(serialization.Encoding.PEM), 0o644
                    )
            self._rogue = _load_ca(cert_path, key_path)
        return self._rogue

    def _pair(
        self,
        folder: str,
        common_name: str,
        *,
        server: bool,
        authority: _Authority | None = None,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        revoked: bool = False,
        peer: bool = False,
        ips: tuple[str, ...] = (),
    ) -> CertPair:
        directory = self.root / folder
        pair = CertPair(directory / f"{common_name}.crt", directory / f"{common_name}.key")
        # Fast path without the lock: the cert is renamed into place after its key, by the
        # only writer holding the lock, so an existing cert always has its matching key.
        if pair.cert.exists():
            return pair
        directory.mkdir(parents=True, exist_ok=True)
        with file_lock(self.root / ".lock"):
            if pair.cert.exists():
                return pair
            serial = None
            if revoked:
                # Under the lock, the count of issued revoked certs is the next free slot.
                slot = sum(1 for path in directory.iterdir() if path.suffix == ".crt")
                if slot >= REVOKED_SLOTS:
                    raise PkiError(
                        f"all {REVOKED_SLOTS} revoked-certificate slots are used; "
                        f"delete {directory} to start over"
                    )
                serial = REVOKED_SERIAL_BASE + slot
            now = _now()
            cert_pem, key_pem = _issue(
                authority or self._ca,
                common_name,
                server=server,
                not_before=not_before or now - CLOCK_SKEW,
                not_after=not_after or now + LEAF_VALIDITY,
                serial=serial,
                peer=peer,
                ips=ips,
            )
            _atomic_write(pair.key, key_pem, 0o600)
            _atomic_write(pair.cert, cert_pem, 0o644)
        return pair


def _checked_device_id(device_id: str) -> str:
    try:
        return validate_device_id(device_id)
    except ContractViolation as error:
        raise PkiError(f"cannot issue a certificate: {error.detail}") from None


def _checked_name(name: str) -> str:
    if not name or len(name) > 64 or not set(name) <= _SERVICE_NAME_CHARS or name[0] == ".":
        raise PkiError(f"bad certificate name {name!r}: use 1-64 letters, digits, '_', '-' or '.'")
    return name
