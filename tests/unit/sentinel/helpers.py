"""Fake auth-callout requests, signed like a nats-server signs them."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import nkeys

from backend.sentinel import jwt


def new_seed(prefix: int) -> str:
    """A fresh nkey seed of the given kind (server, account, user)."""
    return nkeys.encode_seed(secrets.token_bytes(32), prefix).decode()


def new_key(prefix: int) -> nkeys.KeyPair:
    """A fresh nkey pair of the given kind."""
    return nkeys.from_seed(new_seed(prefix).encode())


SERVER = new_key(nkeys.PREFIX_BYTE_SERVER)
ISSUER_SEED = new_seed(nkeys.PREFIX_BYTE_ACCOUNT)
ISSUER = nkeys.from_seed(ISSUER_SEED.encode())
USER_NKEY = new_key(nkeys.PREFIX_BYTE_USER).public_key.decode()


def request_claims(
    user: str = "c1", password: str = "pw", client_type: str = "mqtt", **extra: Any
) -> dict[str, Any]:
    """The claims a server sends for a connect."""
    server_id = SERVER.public_key.decode()
    nats: dict[str, Any] = {
        "server_id": {"name": "sentinel-us-east", "host": "127.0.0.1", "id": server_id},
        "user_nkey": USER_NKEY,
        "client_info": {"host": "127.0.0.1", "id": 7, "type": client_type, "kind": "Client"},
        "connect_opts": {"user": user, "pass": password, "protocol": 1},
        "type": "authorization_request",
        "version": 2,
    }
    nats.update(extra)
    return {"iss": server_id, "sub": USER_NKEY, "aud": "nats-authorization-request", "nats": nats}


def signed_request(claims: dict[str, Any], signer: nkeys.KeyPair = SERVER) -> bytes:
    """``claims`` as a JWT signed by ``signer``."""
    return jwt.encode(claims, signer).encode()


def tamper(token: bytes) -> bytes:
    """The same token with its claims changed after signing."""
    head, body, sig = token.decode().split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["nats"]["connect_opts"]["user"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{sig}".encode()
