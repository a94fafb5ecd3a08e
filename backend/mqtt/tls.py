"""The one TLS client-context builder of the project (devices, backend, bench, bridge).

Every MQTT client of ours — the backend's ingest, simulated devices, the serial bridge, the
bench's readiness check and probes, the load tool — builds its context here, so they agree:
TLS 1.3 at least (the site's Mosquitto listens with ``tls_version tlsv1.3``, DESIGN.md), the
bench CA as the only trust anchor, and the client's own certificate for mutual TLS.

:func:`resumable_session` says which session of a connection is worth offering on the next
one (``ConnectOptions.tls_session``): a device that resumes skips the certificate exchange
and its signatures, the expensive part of a handshake on both ends.
"""

from __future__ import annotations

import ssl
import time
from pathlib import Path

from backend.mqtt.errors import ConnectFailed


def client_tls_context(
    ca: Path | str | None,
    cert: Path | str | None = None,
    key: Path | str | None = None,
    *,
    check_hostname: bool = True,
) -> ssl.SSLContext:
    """A TLS >= 1.3 client context trusting ``ca`` (None: the system store) and presenting
    ``cert``/``key`` when given (``key`` None: the key is in the ``cert`` file).

    A certificate or key that cannot be loaded raises :class:`ConnectFailed` naming the file.
    """
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(ca) if ca is not None else None
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = check_hostname
    if cert is not None:
        try:
            context.load_cert_chain(str(cert), str(key) if key is not None else None)
        except (OSError, ssl.SSLError) as error:
            raise ConnectFailed(f"cannot load client certificate {cert}: {error}") from None
    return context


def resumable_session(
    tls: ssl.SSLObject | ssl.SSLSocket | None, now: float | None = None
) -> ssl.SSLSession | None:
    """The session of an established connection worth offering on the next connect.

    TLS 1.3 has no session until the server's NewSessionTicket arrives *after* the
    handshake; a session read before it cannot resume anything. Mosquitto (through
    OpenSSL) sends its tickets right after the client's Finished, so they are read by the
    time the CONNACK is: call this after a successful connect. A session past its lifetime
    (``timeout``, 7,200 s from OpenSSL) is not worth offering: the server would refuse it.
    """
    session = tls.session if tls is not None else None
    if session is None or not session.has_ticket:
        return None
    if not session_alive(session, now):
        return None
    return session


def session_alive(
    session: ssl.SSLSession, now: float | None = None, *, lifetime_share: float = 1.0
) -> bool:
    """True while ``session`` is within the lifetime the server gave its ticket (or within
    that ``lifetime_share`` of it)."""
    moment = time.time() if now is None else now
    return moment < session.time + session.timeout * lifetime_share
