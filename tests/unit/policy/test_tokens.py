"""JWT validation: the hostile tokens of seed 004's issue, JWKS refresh and outage, claims."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from backend.policy.errors import TokenRejected
from backend.policy.rules import Subject, SubjectType
from backend.policy.tokens import TokenSettings, TokenVerifier, subject_of
from bench.issuer import IssuerKey

ISSUER = "http://issuer.test/realms/aurora"


class FakeJwks:
    """A JWKS endpoint in memory: counts fetches, can be down."""

    def __init__(self, *keys: IssuerKey) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.down = False

    async def __call__(self) -> Mapping[str, Any]:
        self.fetches += 1
        if self.down:
            raise ValueError("connection refused")
        return {"keys": [key.jwk() for key in self.keys]}


@pytest.fixture(scope="module")
def other_key(tmp_path_factory: pytest.TempPathFactory) -> IssuerKey:
    return IssuerKey.ensure(tmp_path_factory.mktemp("other"))


def verifier(jwks: FakeJwks, **overrides: Any) -> TokenVerifier:
    settings = TokenSettings(
        jwks_url="http://issuer.test/certs", audience="aurora-bench", issuer=ISSUER, **overrides
    )
    return TokenVerifier(settings, jwks)


def mint(key: IssuerKey, **kwargs: Any) -> str:
    kwargs.setdefault("sub", "svc-digital-twin")
    kwargs.setdefault("scopes", ["mqtt.write"])
    return key.mint(issuer=ISSUER, **kwargs)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_a_valid_token_gives_its_subject(key: IssuerKey) -> None:
    subject = await verifier(FakeJwks(key)).subject(mint(key, groups=["viewers"]))
    assert subject == Subject(
        SubjectType.SERVICE,
        "svc-digital-twin",
        frozenset({"viewers"}),
        frozenset({"mqtt.write"}),
    )


def _hostile(key: IssuerKey, other: IssuerKey) -> list[tuple[str, str, str]]:
    now = time.time()
    valid = mint(key)
    header, payload, _ = valid.split(".")
    claims = jwt.decode(valid, options={"verify_signature": False})
    public_pem = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged_same_kid = jwt.encode(
        claims, other.private_key, algorithm="ES256", headers={"kid": key.kid}
    )
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return [
        ("expired", mint(key, now=now - 3600, ttl_s=300), "expired"),
        ("not yet valid", mint(key, now=now + 3600), "not valid yet"),
        ("signed by another key", mint(other), "is not in the issuer's JWKS"),
        ("another key, our kid", forged_same_kid, "signature does not verify"),
        ("alg none", f"{_b64({'alg': 'none', 'kid': key.kid})}.{payload}.", "'none'"),
        ("HMAC with the public key", _hs256_with(public_pem, claims, key.kid), "'HS256'"),
        (
            "RSA key, our kid",
            jwt.encode(claims, rsa_key, "RS256", {"kid": key.kid}),
            "does not fit",
        ),
        ("wrong audience", mint(key, audience="someone-else"), "aud must include"),
        ("wrong issuer", other.mint(issuer="http://evil", sub="x"), "is not in the issuer's JWKS"),
        (
            "tampered payload",
            f"{header}.{_b64({**claims, 'scope': 'mqtt.admin'})}.{valid.split('.')[2]}",
            "signature",
        ),
        ("no kid", jwt.encode(claims, key.private_key, "ES256"), "no key id"),
        ("garbage", "not-a-token", "not a JWT"),
        ("oversized", "a" * 9000, "longer than"),
        ("device type", _retyped(key, claims, "device"), "neither"),
    ]


def _hs256_with(secret: bytes, claims: dict[str, Any], kid: str) -> str:
    # PyJWT refuses PEM keys as HMAC secrets itself; build the token by hand, as an
    # attacker would.
    head = _b64({"alg": "HS256", "typ": "JWT", "kid": kid})
    body = _b64(claims)
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def _retyped(key: IssuerKey, claims: dict[str, Any], kind: str) -> str:
    return jwt.encode({**claims, "type": kind}, key.private_key, "ES256", {"kid": key.kid})


async def test_hostile_tokens_are_refused_with_a_reason(
    key: IssuerKey, other_key: IssuerKey
) -> None:
    for name, token, reason in _hostile(key, other_key):
        with pytest.raises(TokenRejected) as raised:
            await verifier(FakeJwks(key)).subject(token)
        assert reason in raised.value.message, (name, raised.value.message)


async def test_wrong_issuer_with_our_key(key: IssuerKey) -> None:
    token = key.mint(issuer="http://elsewhere", sub="svc")
    with pytest.raises(TokenRejected, match="issuer is not"):
        await verifier(FakeJwks(key)).subject(token)


async def test_leeway_accepts_small_clock_skew(key: IssuerKey) -> None:
    skewed = mint(key, now=time.time() + 10)  # nbf 10 s ahead, leeway 30 s
    assert (await verifier(FakeJwks(key)).subject(skewed)).id == "svc-digital-twin"


async def test_an_unknown_kid_refreshes_the_jwks_rate_limited(
    key: IssuerKey, other_key: IssuerKey
) -> None:
    jwks = FakeJwks(key)
    checker = verifier(jwks, jwks_refresh_min_s=3600)
    await checker.subject(mint(key))
    assert jwks.fetches == 1
    for _ in range(5):
        with pytest.raises(TokenRejected, match="not in the issuer's JWKS"):
            await checker.subject(mint(other_key))
    assert jwks.fetches == 1  # refreshed at most once per interval


async def test_a_rotated_key_is_found_by_a_refresh(key: IssuerKey, other_key: IssuerKey) -> None:
    jwks = FakeJwks(key)
    checker = verifier(jwks, jwks_refresh_min_s=0)
    await checker.subject(mint(key))
    jwks.keys.append(other_key)
    assert (await checker.subject(mint(other_key, sub="svc-new"))).id == "svc-new"
    assert jwks.fetches == 2


async def test_a_jwks_outage_denies_and_says_so(
    key: IssuerKey, caplog: pytest.LogCaptureFixture
) -> None:
    jwks = FakeJwks(key)
    jwks.down = True
    with (
        caplog.at_level(logging.ERROR, logger="backend.policy.tokens"),
        pytest.raises(TokenRejected, match=re.escape("JWKS at http://issuer.test/certs is un")),
    ):
        await verifier(jwks).subject(mint(key))
    assert "JWKS http://issuer.test/certs unavailable" in caplog.text


async def test_verified_tokens_are_cached(key: IssuerKey) -> None:
    jwks = FakeJwks(key)
    checker = verifier(jwks)
    token = mint(key)
    first = await checker.subject(token)
    jwks.down = True
    checker.jwks._keys.clear()  # a cached token needs no key any more
    assert await checker.subject(token) == first


def test_unsafe_algorithm_lists_are_refused() -> None:
    for algorithms in (("none",), ("HS256",), ("ES256", "HS512"), ()):
        with pytest.raises(ValueError, match="never none or HMAC"):
            TokenSettings(jwks_url="x", audience="a", algorithms=algorithms)


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        (
            {"sub": "u1", "groups": ["/admins"], "scope": "a b"},
            ("user", "u1", {"admins"}, {"a", "b"}),
        ),
        (
            {"sub": "uuid", "client_id": "svc-x", "typ": "Bearer"},
            ("service", "svc-x", set(), set()),
        ),
        (
            {"sub": "s", "type": "SERVICE", "scp": ["mqtt.read"]},
            ("service", "s", set(), {"mqtt.read"}),
        ),
        ({"sub": "u", "typ": "user"}, ("user", "u", set(), set())),
    ],
)
def test_claims_to_subject(claims: dict[str, Any], expected: tuple[Any, ...]) -> None:
    subject = subject_of(claims)
    assert (subject.type.value, subject.id, set(subject.groups), set(subject.scopes)) == expected


@pytest.mark.parametrize(
    ("claims", "problem"),
    [
        ({}, "names no subject"),
        ({"sub": ""}, "names no subject"),
        ({"sub": "x", "type": "backend"}, "neither 'user' nor 'service'"),
        ({"sub": "x", "groups": "admins"}, "'groups' must be a list"),
        ({"sub": "x", "scope": ["a"]}, "'scope' must be a space-separated string"),
        ({"sub": "x", "scp": "a"}, "'scp' must be a list"),
    ],
)
def test_bad_claims(claims: dict[str, Any], problem: str) -> None:
    with pytest.raises(TokenRejected, match=problem):
        subject_of(claims)


def test_the_issuer_key_survives_a_restart(tmp_path: Path) -> None:
    first = IssuerKey.ensure(tmp_path)
    again = IssuerKey.ensure(tmp_path)
    assert first.kid == again.kid
    assert (tmp_path / "signing-key.pem").stat().st_mode & 0o077 == 0
