"""JWT validation against an issuer's JWKS (PyJWT), and claims -> :class:`Subject`.

What a token must pass (seed 004, DESIGN.md "Policy service"):

* at most :data:`MAX_TOKEN_BYTES`, three base64url parts, a header ``kid`` the JWKS knows;
* ``alg`` on the allow-list (``none`` and every HMAC algorithm are refused when the
  settings are built, so a public key can never be used as an HMAC secret) and fitting the
  key's type (an EC key verifies ES*, an RSA key RS*/PS*, an OKP key EdDSA);
* the signature, ``exp`` (required), ``nbf`` and ``iat`` with a small leeway, ``iss`` when
  an issuer is configured, ``aud`` always.

An unknown ``kid`` refreshes the JWKS (keys rotate) at most once per
``jwks_refresh_min_s``; a JWKS endpoint that is down is logged once per failure and every
token waiting on it is refused. Verified tokens are cached until they expire (bounded), so
the ACL check of every delivered message costs a dictionary lookup, not a signature.

Claims map to the subject: ``type`` (or ``typ``) ``user``/``service`` — without one, a
token carrying ``client_id`` (Keycloak service accounts) is a service, else a user; the id
is ``client_id`` if present, else ``sub``; ``groups`` (a list; Keycloak's leading ``/`` is
dropped); scopes from ``scope`` (space-separated) or ``scp`` (a list).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from jwt import PyJWK

from backend.policy.errors import TokenRejected
from backend.policy.rules import Subject, SubjectType

log = logging.getLogger(__name__)

#: Longer tokens are refused before any parsing (Keycloak tokens are ~1-2 KiB).
MAX_TOKEN_BYTES = 8 * 1024
#: Asymmetric algorithms only: an HMAC key is a shared secret, never a JWKS public key.
SAFE_ALGORITHMS = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
)
_KEY_TYPE_ALGORITHMS = {
    "EC": ("ES256", "ES384", "ES512"),
    "RSA": ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    "OKP": ("EdDSA",),
}
_VERIFIED_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class TokenSettings:
    """Where tokens come from and what they must say."""

    jwks_url: str
    audience: str
    issuer: str | None = None
    algorithms: tuple[str, ...] = ("ES256", "RS256")
    leeway_s: float = 30.0
    jwks_refresh_min_s: float = 10.0
    jwks_timeout_s: float = 3.0

    def __post_init__(self) -> None:
        unsafe = [alg for alg in self.algorithms if alg not in SAFE_ALGORITHMS]
        if unsafe or not self.algorithms:
            raise ValueError(
                f"token algorithms {unsafe or 'none given'} are not allowed; "
                f"choose from {', '.join(sorted(SAFE_ALGORITHMS))} (never none or HMAC)"
            )


#: Reads a JWKS document (an HTTP GET in production, a function in tests).
JwksFetcher = Callable[[], Awaitable[Mapping[str, Any]]]


def http_jwks_fetcher(url: str, timeout_s: float) -> JwksFetcher:
    """A fetcher that GETs ``url`` (a fresh connection each time: refreshes are rare)."""

    async def fetch() -> Mapping[str, Any]:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.get(url)
            response.raise_for_status()
            document = response.json()
        if not isinstance(document, dict):
            raise TypeError("the JWKS is not a JSON object")
        return document

    return fetch


class JwksCache:
    """The issuer's signing keys by ``kid``, refreshed on an unknown kid (rate-limited)."""

    def __init__(self, fetch: JwksFetcher, source: str, refresh_min_s: float) -> None:
        self._fetch = fetch
        self.source = source
        self.refresh_min_s = refresh_min_s
        self._keys: dict[str, PyJWK] = {}
        self._last_attempt: float | None = None
        self._last_error: str | None = None
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> PyJWK:
        """The key ``kid``; raises :class:`TokenRejected` saying why there is none."""
        key = self._keys.get(kid)
        if key is not None:
            return key
        async with self._lock:
            key = self._keys.get(kid)
            if key is None and self._may_refresh():
                await self._refresh()
                key = self._keys.get(kid)
        if key is not None:
            return key
        if self._last_error is not None:
            raise TokenRejected(
                f"cannot check the token: the issuer's JWKS at {self.source} is unavailable "
                f"({self._last_error})"
            )
        raise TokenRejected(f"token key id {kid!r} is not in the issuer's JWKS ({self.source})")

    def _may_refresh(self) -> bool:
        now = time.monotonic()
        return self._last_attempt is None or now - self._last_attempt >= self.refresh_min_s

    async def _refresh(self) -> None:
        self._last_attempt = time.monotonic()
        try:
            document = await self._fetch()
            keys = _parse_jwks(document)
        except (httpx.HTTPError, ValueError, TypeError) as error:
            self._last_error = f"{type(error).__name__}: {error}"
            log.error(  # noqa: TRY400 - one clear line, the cause is in it
                "JWKS %s unavailable (%s): tokens with unknown keys are refused until it "
                "answers (next try in >= %.0f s)",
                self.source,
                self._last_error,
                self.refresh_min_s,
            )
            return
        self._last_error = None
        self._keys = keys
        log.info("JWKS %s: %d signing key(s): %s", self.source, len(keys), ", ".join(keys))


def _parse_jwks(document: Mapping[str, Any]) -> dict[str, PyJWK]:
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise TypeError('the JWKS has no "keys" list')
    keys: dict[str, PyJWK] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or entry.get("kty") not in _KEY_TYPE_ALGORITHMS:
            continue  # symmetric ("oct") and kid-less keys are never used
        try:
            keys[kid] = PyJWK(entry)
        except jwt.PyJWTError as error:
            log.warning("JWKS key %r skipped: %s", kid, error)
    return keys


class TokenVerifier:
    """Validates JWTs and maps their claims to subjects."""

    def __init__(self, settings: TokenSettings, fetch: JwksFetcher | None = None) -> None:
        self.settings = settings
        self.jwks = JwksCache(
            fetch or http_jwks_fetcher(settings.jwks_url, settings.jwks_timeout_s),
            settings.jwks_url,
            settings.jwks_refresh_min_s,
        )
        self._verified: OrderedDict[str, tuple[Subject, float]] = OrderedDict()

    async def subject(self, token: str) -> Subject:
        """The subject of a valid token; :class:`TokenRejected` says what is wrong."""
        cached = self._verified.get(token)
        if cached is not None:
            subject, expires = cached
            if time.time() < expires + self.settings.leeway_s:
                return subject
            del self._verified[token]
        claims = await self.claims(token)
        subject = subject_of(claims)
        self._verified[token] = (subject, float(claims["exp"]))
        if len(self._verified) > _VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return subject

    async def claims(self, token: str) -> dict[str, Any]:
        """The verified claims of ``token``."""
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenRejected(f"token is longer than {MAX_TOKEN_BYTES} bytes")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise TokenRejected(f"not a JWT ({error})") from None
        alg = header.get("alg")
        if alg not in self.settings.algorithms:
            raise TokenRejected(
                f"token algorithm {alg!r} is not allowed; "
                f"allowed: {', '.join(self.settings.algorithms)}"
            )
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise TokenRejected("token header names no key id (kid)")
        key = await self.jwks.key(kid)
        if alg not in _KEY_TYPE_ALGORITHMS.get(key.key_type or "", ()):
            raise TokenRejected(f"token algorithm {alg} does not fit key {kid!r} ({key.key_type})")
        try:
            return jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=self.settings.leeway_s,
                options={"require": ["exp"], "verify_iss": self.settings.issuer is not None},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRejected("token has expired; get a fresh one") from None
        except jwt.ImmatureSignatureError:
            raise TokenRejected("token is not valid yet (nbf/iat in the future)") from None
        except jwt.InvalidAudienceError:
            raise TokenRejected(
                f"token is not meant for this service (aud must include {self.settings.audience!r})"
            ) from None
        except jwt.InvalidIssuerError:
            raise TokenRejected(
                f"token issuer is not {self.settings.issuer!r}; get a token there"
            ) from None
        except jwt.InvalidSignatureError:
            raise TokenRejected("token signature does not verify") from None
        except jwt.PyJWTError as error:
            raise TokenRejected(f"token refused: {error}") from None


def subject_of(claims: Mapping[str, Any]) -> Subject:
    """The subject a verified token speaks for (see the module docstring)."""
    declared = claims.get("type", claims.get("typ"))
    if isinstance(declared, str) and declared.lower() in (SubjectType.USER, SubjectType.SERVICE):
        kind = SubjectType(declared.lower())
    elif declared is not None and declared not in ("Bearer", "JWT", "at+jwt"):
        raise TokenRejected(f"token type {declared!r} is neither 'user' nor 'service'")
    else:
        kind = SubjectType.SERVICE if "client_id" in claims else SubjectType.USER
    identity = claims.get("client_id", claims.get("sub"))
    if not isinstance(identity, str) or not identity:
        raise TokenRejected("token names no subject (sub or client_id)")
    groups = claims.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise TokenRejected("token claim 'groups' must be a list of strings")
    scopes: list[str]
    if isinstance(claims.get("scope"), str):
        scopes = claims["scope"].split()
    elif "scp" in claims:
        scp = claims["scp"]
        if not isinstance(scp, list) or not all(isinstance(s, str) for s in scp):
            raise TokenRejected("token claim 'scp' must be a list of strings")
        scopes = scp
    elif "scope" in claims:
        raise TokenRejected("token claim 'scope' must be a space-separated string")
    else:
        scopes = []
    return Subject(
        kind,
        identity,
        frozenset(group.lstrip("/") for group in groups),
        frozenset(scopes),
    )
