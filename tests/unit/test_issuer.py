"""The bench's token issuer: claims of its tokens, the client-credentials answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from bench.errors import BenchError
from bench.issuer import AUDIENCE, SECRET_FILE, TokenIssuer


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[TokenIssuer]:
    # Not started: the methods under test need no socket traffic.
    made = TokenIssuer(tmp_path / "issuer")
    yield made
    made.close()


def test_tokens_carry_the_claims_the_policy_service_reads(issuer: TokenIssuer) -> None:
    token = issuer.mint(sub="svc-digital-twin", scopes=["mqtt.write"], groups=["viewers"])
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "ES256", "kid": issuer.key.kid, "typ": "JWT"}
    claims = jwt.decode(
        token,
        issuer.key.private_key.public_key(),
        algorithms=["ES256"],
        audience=AUDIENCE,
        issuer=issuer.issuer,
    )
    assert claims["sub"] == claims["client_id"] == "svc-digital-twin"
    assert claims["type"] == "service"
    assert claims["scope"] == "mqtt.write"
    assert claims["groups"] == ["viewers"]
    assert claims["exp"] - claims["iat"] == 300
    user = jwt.decode(issuer.mint(sub="victor", type_="user"), options={"verify_signature": False})
    assert "client_id" not in user


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"sub": "x", "type_": "device"}, "use user or service"),
        ({"sub": ""}, "needs a subject"),
        ({"sub": "x", "ttl_s": 0}, "lifetime"),
    ],
)
def test_bad_token_requests(issuer: TokenIssuer, kwargs: dict[str, object], problem: str) -> None:
    with pytest.raises(BenchError, match=problem):
        issuer.mint(**kwargs)


def test_client_credentials(issuer: TokenIssuer) -> None:
    good = {
        "grant_type": "client_credentials",
        "client_id": "svc-test",
        "client_secret": issuer.secret,
        "scope": "mqtt.write mqtt.read",
    }
    status, body = issuer.client_credentials(good)
    assert status == 200
    assert body["token_type"] == "Bearer"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert (claims["sub"], claims["scope"]) == ("svc-test", "mqtt.write mqtt.read")
    wrong = issuer.client_credentials({**good, "client_secret": "guess"})
    assert wrong[0] == 401
    assert wrong[1]["error"] == "invalid_client"
    assert SECRET_FILE in wrong[1]["error_description"]
    assert issuer.client_credentials({**good, "grant_type": "password"})[0] == 400
    assert issuer.client_credentials({**good, "ttl": "forever"})[0] == 400


def test_the_secret_and_key_are_private_and_kept(tmp_path: Path) -> None:
    first = TokenIssuer(tmp_path / "issuer")
    second = TokenIssuer(tmp_path / "issuer")
    try:
        assert first.secret == second.secret
        assert first.key.kid == second.key.kid
        assert (tmp_path / "issuer" / SECRET_FILE).stat().st_mode & 0o077 == 0
    finally:
        first.close()
        second.close()
