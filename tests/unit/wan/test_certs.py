"""A site in its own namespace is reached at its namespace address: its certs name it."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from bench.pki import Pki


def _ips(path: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(address) for address in names.get_values_for_type(x509.IPAddress)}


def test_a_server_cert_for_a_namespace_address_names_it_beside_the_loopback(
    tmp_path: Path,
) -> None:
    pki = Pki.ensure(tmp_path)
    plain = pki.server("mosquitto-a")
    wan = pki.server("mosquitto-a", ips=("10.201.3.2",))
    assert _ips(plain.cert) == {"127.0.0.1", "::1"}
    assert _ips(wan.cert) == {"127.0.0.1", "::1", "10.201.3.2"}
    assert wan.cert != plain.cert  # both kept: a loopback bench still uses the plain one
    assert pki.server("mosquitto-a", ips=("10.201.3.2",)) == wan  # issued once
