"""Auth-callout JWTs: requests verified and parsed, responses addressed and signed."""

from __future__ import annotations

import json

import nkeys
import pytest

from backend.sentinel import jwt
from backend.sentinel.errors import BadAuthRequest
from backend.sentinel.permissions import ClientType, client_permissions
from tests.unit.sentinel.helpers import (
    ISSUER,
    SERVER,
    USER_NKEY,
    new_key,
    request_claims,
    signed_request,
    tamper,
)


def test_a_signed_request_is_parsed() -> None:
    request = jwt.decode_request(signed_request(request_claims("c1", "pw", "mqtt")))
    assert request.username == "c1"
    assert request.password == "pw"
    assert request.client_type is ClientType.MQTT
    assert request.server_id == SERVER.public_key.decode()
    assert request.server_name == "sentinel-us-east"
    assert request.user_nkey == USER_NKEY
    assert request.remote_host == "127.0.0.1"


def test_the_signature_is_checked_against_the_server_it_names() -> None:
    with pytest.raises(BadAuthRequest, match="signature"):
        jwt.decode_request(tamper(signed_request(request_claims())))
    impostor = new_key(nkeys.PREFIX_BYTE_SERVER)
    with pytest.raises(BadAuthRequest, match="signature"):
        jwt.decode_request(signed_request(request_claims(), signer=impostor))


def test_an_account_key_cannot_pose_as_a_server() -> None:
    claims = request_claims()
    issuer = ISSUER.public_key.decode()
    claims["iss"] = issuer
    claims["nats"]["server_id"]["id"] = issuer
    with pytest.raises(BadAuthRequest, match="not a server nkey"):
        jwt.decode_request(signed_request(claims, signer=ISSUER))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "3"),
        (b"a.b", "parts"),
        (b"\xff\xfe.x.y", "not ASCII"),
        (b"!!!.???.***", "base64url"),
        (b"x" * (jwt.MAX_REQUEST_BYTES + 1), "over"),
    ],
)
def test_malformed_requests_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(BadAuthRequest, match=reason):
        jwt.decode_request(data)


def test_requests_of_another_type_or_with_bad_fields_are_refused() -> None:
    wrong_type = request_claims(type="authorization_response")
    with pytest.raises(BadAuthRequest, match="type"):
        jwt.decode_request(signed_request(wrong_type))
    bad_field = request_claims()
    bad_field["nats"]["connect_opts"]["user"] = ["not", "a", "string"]
    with pytest.raises(BadAuthRequest, match=r"connect_opts\.user"):
        jwt.decode_request(signed_request(bad_field))
    huge = request_claims(password="p" * (jwt.MAX_FIELD_CHARS + 1))
    with pytest.raises(BadAuthRequest, match="longer"):
        jwt.decode_request(signed_request(huge))
    expired = request_claims()
    expired["exp"] = 1
    with pytest.raises(BadAuthRequest, match="expired"):
        jwt.decode_request(signed_request(expired))


def test_an_allow_response_embeds_a_user_jwt_with_the_clients_permissions() -> None:
    user = jwt.user_jwt(
        issuer=ISSUER,
        user_nkey=USER_NKEY,
        name="c1",
        account="SENTINEL",
        permissions=client_permissions("c1", ClientType.NATS),
    )
    response = jwt.response_jwt(
        issuer=ISSUER, user_nkey=USER_NKEY, server_id="NSERVER", user=user, error=""
    )
    outer = jwt.decode_claims(response)
    assert outer["aud"] == "NSERVER"
    assert outer["sub"] == USER_NKEY
    assert outer["iss"] == ISSUER.public_key.decode()
    assert outer["nats"]["type"] == "authorization_response"
    assert "error" not in outer["nats"]
    inner = jwt.decode_claims(outer["nats"]["jwt"])
    assert inner["aud"] == "SENTINEL"
    assert inner["sub"] == USER_NKEY
    assert inner["nats"]["sub"] == {"allow": ["clients.c1.alerts"]}
    assert inner["nats"]["pub"] == {"deny": [">"]}
    # Signed by the issuer: the signature verifies with its public key.
    head, body, signature = response.split(".")
    ISSUER.verify(f"{head}.{body}".encode(), jwt._unb64url(signature))


def test_a_deny_response_carries_the_reason_and_no_user() -> None:
    response = jwt.response_jwt(
        issuer=ISSUER, user_nkey=USER_NKEY, server_id="NSERVER", user=None, error="nope"
    )
    claims = jwt.decode_claims(response)
    assert claims["nats"]["error"] == "nope"
    assert "jwt" not in claims["nats"]
    assert json.loads(json.dumps(claims))  # plain JSON all the way
