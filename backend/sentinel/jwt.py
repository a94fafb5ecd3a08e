"""NATS JWTs of the auth callout (pure; signatures with nkeys/PyNaCl).

A NATS JWT is ``base64url(header).base64url(claims).base64url(signature)`` with header
``{"typ": "JWT", "alg": "ed25519-nkey"}``, the signature ed25519 over the first two parts,
and ``jti`` a hash of the claims. The server signs each *authorization request* with its
own server nkey (``iss`` = ``nats.server_id.id``); the service answers with an
*authorization response* signed by the callout issuer (an account nkey the servers trust),
addressed to that server (``aud``), embedding either a *user* JWT or an error. (PyPI's
``nats-jwt`` lacks these types; DESIGN: Facts verified for Sentinel.)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
import nacl.signing
import nkeys

from backend.sentinel.errors import BadAuthRequest
from backend.sentinel.permissions import ClientType, Permissions

HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
#: A request carries the client's CONNECT options and (for mTLS) its certificates; nothing
#: legitimate comes near this size, and decoding never starts on anything larger.
MAX_REQUEST_BYTES = 64 * 1024
MAX_FIELD_CHARS = 4096
_REQUEST_TYPE = "authorization_request"
_RESPONSE_TYPE = "authorization_response"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _jti(claims: dict[str, Any]) -> str:
    body = json.dumps({**claims, "jti": ""}, separators=(",", ":"), sort_keys=True)
    return base64.b32encode(hashlib.sha256(body.encode()).digest()).decode().rstrip("=")


def encode(claims: dict[str, Any], signer: nkeys.KeyPair) -> str:
    """Sign ``claims`` (``jti`` and ``iat`` filled in) as a NATS JWT."""
    claims = {"iat": int(time.time()), **claims}
    claims["jti"] = _jti(claims)
    head = _b64url(json.dumps(HEADER, separators=(",", ":")).encode())
    body = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signature = signer.sign(f"{head}.{body}".encode())
    return f"{head}.{body}.{_b64url(signature)}"


def verify_key(public_key: str, prefix: int = nkeys.PREFIX_BYTE_SERVER) -> nacl.signing.VerifyKey:
    """The ed25519 verify key of an nkey public key (``N...`` for servers); checks the CRC."""
    try:
        raw = base64.b32decode(public_key.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise BadAuthRequest(f"issuer {public_key[:60]!r} is not an nkey") from None
    if len(raw) != 35 or raw[0] != prefix:
        raise BadAuthRequest(f"issuer {public_key[:60]!r} is not a server nkey")
    if int.from_bytes(raw[-2:], "little") != nkeys.crc16(bytearray(raw[:-2])):
        raise BadAuthRequest(f"issuer {public_key[:60]!r} has a bad checksum")
    return nacl.signing.VerifyKey(raw[1:33])


@dataclass(frozen=True)
class AuthRequest:
    """What the service needs from a verified authorization request."""

    server_id: str
    server_name: str
    user_nkey: str
    client_type: ClientType
    remote_host: str
    username: str
    password: str
    client_name: str
    mqtt_client_id: str


def _text(value: object, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadAuthRequest(f"{where} is not a string")
    if len(value) > MAX_FIELD_CHARS:
        raise BadAuthRequest(f"{where} is longer than {MAX_FIELD_CHARS} characters")
    return value


def _object(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadAuthRequest(f"{where} is not an object")
    return value


def decode_request(token: bytes, *, now: float | None = None) -> AuthRequest:
    """Verify and parse an authorization request; BadAuthRequest says what is wrong.

    Checks: size, three parts, the header's algorithm, the claims' type, that the issuer
    is the server named in the claims and the signature is that server's, and expiry.
    """
    if len(token) > MAX_REQUEST_BYTES:
        raise BadAuthRequest(f"request of {len(token)} bytes is over {MAX_REQUEST_BYTES}")
    try:
        text = token.decode("ascii").strip()
    except UnicodeDecodeError:
        raise BadAuthRequest("request is not ASCII (not a JWT)") from None
    parts = text.split(".")
    if len(parts) != 3:
        raise BadAuthRequest(f"request has {len(parts)} dot-separated parts, a JWT has 3")
    try:
        header = json.loads(_unb64url(parts[0]))
        claims = json.loads(_unb64url(parts[1]))
        signature = _unb64url(parts[2])
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadAuthRequest("request is not base64url-encoded JSON") from None
    if not isinstance(header, dict) or header.get("alg") not in ("ed25519-nkey", "ed25519"):
        raise BadAuthRequest("request header does not name the ed25519-nkey algorithm")
    if not isinstance(claims, dict):
        raise BadAuthRequest("request claims are not an object")
    nats = _object(claims.get("nats"), "nats")
    if nats.get("type") != _REQUEST_TYPE:
        raise BadAuthRequest(f"request type is {str(nats.get('type'))[:40]!r}, not {_REQUEST_TYPE}")
    server = _object(nats.get("server_id"), "nats.server_id")
    issuer = _text(claims.get("iss"), "iss")
    if not issuer or issuer != server.get("id"):
        raise BadAuthRequest("request issuer is not the server it names")
    try:
        verify_key(issuer).verify(f"{parts[0]}.{parts[1]}".encode("ascii"), signature)
    except (nacl.exceptions.BadSignatureError, ValueError):
        raise BadAuthRequest("request signature does not verify against its server") from None
    expires = claims.get("exp")
    moment = time.time() if now is None else now
    if isinstance(expires, int | float) and expires and expires < moment:
        raise BadAuthRequest("request has expired")
    client = _object(nats.get("client_info"), "nats.client_info")
    connect = _object(nats.get("connect_opts"), "nats.connect_opts")
    user_nkey = _text(nats.get("user_nkey"), "nats.user_nkey")
    if not user_nkey:
        raise BadAuthRequest("request has no user_nkey to issue a user for")
    return AuthRequest(
        server_id=issuer,
        server_name=_text(server.get("name"), "nats.server_id.name"),
        user_nkey=user_nkey,
        client_type=ClientType.parse(client.get("type")),
        remote_host=_text(client.get("host"), "nats.client_info.host"),
        username=_text(connect.get("user"), "nats.connect_opts.user"),
        password=_text(connect.get("pass"), "nats.connect_opts.pass"),
        client_name=_text(connect.get("name"), "nats.connect_opts.name"),
        mqtt_client_id=_text(client.get("mqtt_id"), "nats.client_info.mqtt_id"),
    )


def user_jwt(
    *,
    issuer: nkeys.KeyPair,
    user_nkey: str,
    name: str,
    account: str,
    permissions: Permissions,
    expires_s: int | None = None,
) -> str:
    """A user JWT for ``user_nkey`` in ``account`` (config mode: ``aud`` = account name)."""
    claims: dict[str, Any] = {
        "iss": issuer.public_key.decode(),
        "sub": user_nkey,
        "aud": account,
        "name": name,
        "nats": {
            **permissions.to_claims(),
            "subs": -1,
            "data": -1,
            "payload": -1,
            "type": "user",
            "version": 2,
        },
    }
    if expires_s is not None:
        claims["exp"] = int(time.time()) + expires_s
    return encode(claims, issuer)


def response_jwt(
    *, issuer: nkeys.KeyPair, user_nkey: str, server_id: str, user: str | None, error: str
) -> str:
    """The authorization response: the user JWT when allowed, else the error (a denial)."""
    nats: dict[str, Any] = {"type": _RESPONSE_TYPE, "version": 2}
    if user is not None:
        nats["jwt"] = user
    else:
        nats["error"] = error or "not authorized"
    return encode(
        {"iss": issuer.public_key.decode(), "sub": user_nkey, "aud": server_id, "nats": nats},
        issuer,
    )


def decode_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT without verifying it (tests and debugging only)."""
    claims: dict[str, Any] = json.loads(_unb64url(token.split(".")[1]))
    return claims
