"""The bench's token issuer: one EC key, its JWKS over HTTP, client-credentials tokens.

Built once for the policy service (token clients of MQTT) and the REST API (operators,
scripts). It is shaped like a Keycloak realm so a lab can swap in its own::

    GET  <issuer>/protocol/openid-connect/certs    the JWKS
    POST <issuer>/protocol/openid-connect/token    grant_type=client_credentials,
                                                   client_id, client_secret, scope
    GET  <issuer>/.well-known/openid-configuration

with ``<issuer>`` = ``http://127.0.0.1:<port>/realms/aurora`` (the tokens' ``iss``).
The key (``<state>/issuer/signing-key.pem``) and the client secret
(``<state>/issuer/client-secret``) are made once per state dir, readable by the owner
only; whoever holds either can mint any token, as a realm admin could.

Tokens carry ``iss``, ``aud``, ``sub``, ``type`` (user|service), ``scope``
(space-separated), ``groups``, ``iat``, ``nbf``, ``exp`` and a ``jti``; service tokens
also ``client_id`` (as Keycloak's service accounts do).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import secrets
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench.benchfile import TokenIssuerInfo
from bench.errors import BenchError

log = logging.getLogger(__name__)

ISSUER_DIR = "issuer"
KEY_FILE = "signing-key.pem"
SECRET_FILE = "client-secret"  # noqa: S105 - a file name, not a secret
REALM_PATH = "/realms/aurora"
CERTS_PATH = f"{REALM_PATH}/protocol/openid-connect/certs"
TOKEN_PATH = f"{REALM_PATH}/protocol/openid-connect/token"
DISCOVERY_PATH = f"{REALM_PATH}/.well-known/openid-configuration"
#: The ``aud`` of every bench token and what each site's backend expects.
AUDIENCE = "aurora-bench"
#: The operator token ``aurora-bench up`` prints: every REST API scope.
OPERATOR = "bench-operator"
OPERATOR_SCOPES = ("aurora.read", "aurora.operate", "aurora.admin")
OPERATOR_TTL_S = 7 * 24 * 3600
DEFAULT_TTL_S = 300
MAX_TTL_S = 30 * 24 * 3600
TOKEN_TYPES = ("user", "service")
_MAX_FORM_BYTES = 16 * 1024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


@dataclass(frozen=True)
class IssuerKey:
    """The issuer's P-256 signing key; ``kid`` is its RFC 7638 thumbprint."""

    private_key: ec.EllipticCurvePrivateKey
    kid: str

    @classmethod
    def ensure(cls, directory: Path) -> IssuerKey:
        """Load ``directory/signing-key.pem``, making it first if absent."""
        path = directory / KEY_FILE
        if not path.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            _write_private(
                path,
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
        return cls.load(directory)

    @classmethod
    def generate(cls) -> IssuerKey:
        """A fresh key kept in memory only (a stranger's key for hostile tokens)."""
        key = ec.generate_private_key(ec.SECP256R1())
        return cls(key, _thumbprint(key.public_key()))

    @classmethod
    def load(cls, directory: Path) -> IssuerKey:
        """Load the key of an existing issuer directory (clear error when missing)."""
        path = directory / KEY_FILE
        try:
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except FileNotFoundError:
            raise BenchError(
                f"{path} not found: the token issuer's key is made by `aurora-bench up`"
            ) from None
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise BenchError(f"{path} is not an EC private key")
        return cls(loaded, _thumbprint(loaded.public_key()))

    def jwk(self) -> dict[str, str]:
        """The public key as a JWK."""
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64(numbers.x.to_bytes(32, "big")),
            "y": _b64(numbers.y.to_bytes(32, "big")),
            "kid": self.kid,
            "use": "sig",
            "alg": "ES256",
        }

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The JWKS document."""
        return {"keys": [self.jwk()]}

    def mint(
        self,
        *,
        issuer: str,
        sub: str,
        type_: str = "service",
        scopes: Iterable[str] = (),
        groups: Iterable[str] = (),
        ttl_s: int = DEFAULT_TTL_S,
        audience: str = AUDIENCE,
        now: float | None = None,
    ) -> str:
        """A signed ES256 token (see the module docstring for its claims)."""
        if type_ not in TOKEN_TYPES:
            raise BenchError(f"token type {type_!r}: use user or service")
        if not sub:
            raise BenchError("a token needs a subject (--sub)")
        if not 0 < ttl_s <= MAX_TTL_S:
            raise BenchError(f"token lifetime {ttl_s} s: use 1..{MAX_TTL_S}")
        issued = int(time.time() if now is None else now)
        claims: dict[str, Any] = {
            "iss": issuer,
            "aud": audience,
            "sub": sub,
            "type": type_,
            "scope": " ".join(scopes),
            "groups": list(groups),
            "iat": issued,
            "nbf": issued,
            "exp": issued + ttl_s,
            "jti": str(uuid.uuid4()),
        }
        if type_ == "service":
            claims["client_id"] = sub
        return jwt.encode(claims, self.private_key, algorithm="ES256", headers={"kid": self.kid})


class Forgery(StrEnum):
    """A token the policy service must refuse, and why (seed 004's hostile tokens)."""

    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    FOREIGN_KEY = "foreign_key"
    FOREIGN_KEY_OUR_KID = "foreign_key_our_kid"
    ALG_NONE = "alg_none"
    WRONG_AUDIENCE = "wrong_audience"


#: How far outside its validity a forged token lies: far beyond any verifier's leeway.
FORGERY_SKEW_S = 3600


def forge(
    key: IssuerKey,
    issuer: str,
    forgery: Forgery,
    *,
    sub: str,
    type_: str = "service",
    scopes: Iterable[str] = (),
    groups: Iterable[str] = (),
    ttl_s: int = DEFAULT_TTL_S,
    now: float | None = None,
) -> str:
    """A token with ``key``'s issuer and the given claims, spoiled as ``forgery`` says.

    Everything but the one flaw is right (issuer, audience, subject, a lifetime), so a
    verifier that refuses it refuses it for that flaw.
    """
    issued = time.time() if now is None else now
    scopes, groups = tuple(scopes), tuple(groups)

    def sign(signer: IssuerKey, *, at: float = issued, audience: str = AUDIENCE) -> str:
        return signer.mint(
            issuer=issuer, sub=sub, type_=type_, scopes=scopes, groups=groups,
            ttl_s=ttl_s, audience=audience, now=at,
        )  # fmt: skip

    match forgery:
        case Forgery.EXPIRED:
            return sign(key, at=issued - ttl_s - FORGERY_SKEW_S)
        case Forgery.NOT_YET_VALID:
            return sign(key, at=issued + FORGERY_SKEW_S)
        case Forgery.WRONG_AUDIENCE:
            return sign(key, audience=f"not-{AUDIENCE}")
        case Forgery.FOREIGN_KEY:
            return sign(IssuerKey.generate())
        case Forgery.FOREIGN_KEY_OUR_KID:
            payload = jwt.decode(sign(key), options={"verify_signature": False})
            return jwt.encode(payload, IssuerKey.generate().private_key, "ES256", {"kid": key.kid})
        case Forgery.ALG_NONE:
            # PyJWT will not write alg none (rightly): spell the unsigned token out.
            header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": key.kid}).encode())
            return f"{header}.{sign(key).split('.')[1]}."
    raise BenchError(f"unknown forgery {forgery!r}")  # pragma: no cover - enum exhausted


def _thumbprint(public_key: ec.EllipticCurvePublicKey) -> str:
    numbers = public_key.public_numbers()
    members = {
        "crv": "P-256",
        "kty": "EC",
        "x": _b64(numbers.x.to_bytes(32, "big")),
        "y": _b64(numbers.y.to_bytes(32, "big")),
    }
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return _b64(hashlib.sha256(canonical).digest())


def client_secret(directory: Path) -> str:
    """The client secret of the token endpoint, made once per state dir."""
    path = directory / SECRET_FILE
    if not path.exists():
        _write_private(path, secrets.token_urlsafe(24).encode())
    return path.read_text().strip()


class TokenIssuer:
    """The issuer's HTTP endpoints on a loopback port, served from a thread."""

    def __init__(self, directory: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.directory = directory
        self.key = IssuerKey.ensure(directory)
        self.secret = client_secret(directory)
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        bound_host, bound_port = self._server.server_address[:2]
        # Listening on every address (a WAN bench): clients here still use the loopback.
        shown = "127.0.0.1" if bound_host == "0.0.0.0" else bound_host
        self.base_url = f"http://{shown!s}:{bound_port}"
        self.issuer = f"{self.base_url}{REALM_PATH}"
        self.jwks_url = f"{self.base_url}{CERTS_PATH}"
        self.token_url = f"{self.base_url}{TOKEN_PATH}"
        self._thread: threading.Thread | None = None

    def start(self) -> TokenIssuer:
        """Serve in a daemon thread (returns self)."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="token-issuer", daemon=True
        )
        self._thread.start()
        return self

    def mint(self, **kwargs: Any) -> str:
        """A token from this issuer (arguments of :meth:`IssuerKey.mint`)."""
        return self.key.mint(issuer=self.issuer, **kwargs)

    def forge(self, forgery: Forgery, **kwargs: Any) -> str:
        """A hostile token naming this issuer (arguments of :func:`forge`)."""
        return forge(self.key, self.issuer, forgery, **kwargs)

    def operator_token(self) -> str:
        """The token ``aurora-bench up`` prints: every REST API scope, a week long."""
        return self.mint(sub=OPERATOR, type_="user", scopes=OPERATOR_SCOPES, ttl_s=OPERATOR_TTL_S)

    def backend_env(self) -> dict[str, str]:
        """The ``AURORA_AUTH_*`` settings a site's backend needs to trust this issuer."""
        return {
            "AURORA_AUTH_JWKS_URL": self.jwks_url,
            "AURORA_AUTH_ISSUER": self.issuer,
            "AURORA_AUTH_AUDIENCE": AUDIENCE,
        }

    def info(self) -> TokenIssuerInfo:
        """The ``token_issuer`` entry of bench.json."""
        return TokenIssuerInfo(
            issuer=self.issuer, jwks=self.jwks_url, token_url=self.token_url, audience=AUDIENCE
        )

    def close(self) -> None:
        """Stop serving; safe to call twice."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    # -- the token endpoint ------------------------------------------------------------

    def client_credentials(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Answer a token request (status, JSON body), OAuth 2 error codes on failure."""
        if form.get("grant_type") != "client_credentials":
            return 400, _oauth_error(
                "unsupported_grant_type", "only grant_type=client_credentials is served"
            )
        client_id = form.get("client_id", "")
        given = form.get("client_secret", "")
        if not client_id or not secrets.compare_digest(given.encode(), self.secret.encode()):
            return 401, _oauth_error(
                "invalid_client",
                f"unknown client or wrong secret; the secret is in {self.directory / SECRET_FILE}",
            )
        scopes = form.get("scope", "").split()
        groups = form.get("groups", "").split()
        try:
            ttl_s = int(form.get("ttl", str(DEFAULT_TTL_S)))
            token = self.mint(
                sub=client_id, type_="service", scopes=scopes, groups=groups, ttl_s=ttl_s
            )
        except (ValueError, BenchError) as error:
            return 400, _oauth_error("invalid_request", str(error))
        return 200, {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": ttl_s,
            "scope": " ".join(scopes),
        }

    def discovery(self) -> dict[str, Any]:
        """The OpenID discovery document (the parts a verifier reads)."""
        return {
            "issuer": self.issuer,
            "jwks_uri": self.jwks_url,
            "token_endpoint": self.token_url,
            "grant_types_supported": ["client_credentials"],
            "id_token_signing_alg_values_supported": ["ES256"],
        }


def _oauth_error(code: str, description: str) -> dict[str, str]:
    return {"error": code, "error_description": description}


def _handler_for(issuer: TokenIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path == CERTS_PATH:
                self._json(200, issuer.key.jwks())
            elif self.path == DISCOVERY_PATH:
                self._json(200, issuer.discovery())
            else:
                self._json(404, {"error": f"no such path; the JWKS is at {CERTS_PATH}"})

        def do_POST(self) -> None:
            if self.path != TOKEN_PATH:
                self._json(404, {"error": f"no such path; tokens come from {TOKEN_PATH}"})
                return
            try:
                length = int(self.headers.get("content-length", "0"))
            except ValueError:
                length = -1
            if not 0 <= length <= _MAX_FORM_BYTES:
                self._json(400, _oauth_error("invalid_request", "send a form of at most 16 KiB"))
                return
            try:
                form = dict(
                    parse_qsl(self.rfile.read(length).decode("utf-8"), keep_blank_values=True)
                )
            except (UnicodeDecodeError, ValueError):
                self._json(400, _oauth_error("invalid_request", "the form cannot be read"))
                return
            self._json(*issuer.client_credentials(form))

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("token issuer: " + format, *args)

    return Handler


def start_issuer(state_dir: Path, *, everywhere: bool = False) -> TokenIssuer:
    """The bench's issuer for ``state_dir`` (key under ``<state>/issuer``), serving.

    ``everywhere`` listens on every address of the root namespace, not only the loopback
    (backends in a WAN bench's site namespaces fetch its keys through their veth).
    """
    host = "0.0.0.0" if everywhere else "127.0.0.1"
    return TokenIssuer(state_dir / ISSUER_DIR, host=host).start()
