"""Mosquitto's TLS session-ticket key, kept across restarts (``aurora_ticket_keys.so``).

Stock Mosquitto 2.0 leaves the ticket key to OpenSSL, which makes a random one for each
start: after a broker restart no device can resume its TLS session, and a reconnect storm
is a storm of full handshakes. The bench preloads ``bench/mosquitto_plugin/ticket_keys.c``
into its Mosquitto, which derives the key from a secret kept in the site's state directory
and the CRL the broker loads — the same key after a restart, a new one when the CRL
changed, so a revoked certificate cannot resume a session (docs/architecture.md, Security).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from bench.errors import ServiceStartError
from bench.services.auth_plugin import ensure_plugin

log = logging.getLogger(__name__)

SHIM_NAME = "aurora_ticket_keys.so"
SEED_FILE = "ticket-key.seed"
SECRET_BYTES = 32


def ticket_key_env(work: Path, crl: Path | None) -> dict[str, str]:
    """Environment of a Mosquitto that keeps its ticket key (the secret made once in
    ``work``, mode 0600); empty — stock behaviour — when the shim cannot be built."""
    try:
        shim = ensure_plugin().parent / SHIM_NAME
    except ServiceStartError as error:
        log.warning("TLS tickets will not survive a broker restart: %s", error)
        return {}
    if not shim.is_file():
        log.warning("TLS tickets will not survive a broker restart: %s is missing", shim)
        return {}
    secret = work / SEED_FILE
    if not secret.is_file():
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(os.urandom(SECRET_BYTES))
    env = {"LD_PRELOAD": str(shim), "AURORA_TLS_TICKET_SECRET": str(secret)}
    if crl is not None:
        env["AURORA_TLS_TICKET_CRL"] = str(crl)
    return env
