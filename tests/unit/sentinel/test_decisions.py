"""Auth DB decisions and the callout handler, without servers."""

from __future__ import annotations

import pytest

from backend.sentinel import jwt
from backend.sentinel.authdb import (
    ClientRecord,
    Reason,
    decide,
    hash_password,
)
from backend.sentinel.callout import CalloutHandler
from backend.sentinel.shards import account_of, shard_account, shard_of
from tests.unit.sentinel.helpers import ISSUER_SEED, SERVER, request_claims, signed_request

GOOD = ClientRecord("c1", hash_password("right"), True, "eu-west")
DISABLED = ClientRecord("c2", hash_password("right"), False, "us-east")
SHARDS = 8


@pytest.mark.parametrize(
    ("client_id", "password", "record", "allowed", "reason"),
    [
        ("c1", "right", GOOD, True, Reason.OK),
        ("c1", "wrong", GOOD, False, Reason.BAD_PASSWORD),
        ("c1", "", GOOD, False, Reason.BAD_PASSWORD),
        ("c2", "right", DISABLED, False, Reason.DISABLED),
        ("ghost", "right", None, False, Reason.UNKNOWN_CLIENT),
        ("c1.>", "right", GOOD, False, Reason.BAD_CLIENT_ID),
        ("c1", "r" * 10_000, GOOD, False, Reason.BAD_PASSWORD),
        ("c1", "right\x00\udcff\u202e", GOOD, False, Reason.BAD_PASSWORD),
    ],
)
def test_decisions(
    client_id: str, password: str, record: ClientRecord | None, allowed: bool, reason: Reason
) -> None:
    decision = decide(client_id, password, record)
    assert (decision.allowed, decision.reason) == (allowed, reason)


def test_odd_bytes_in_a_password_round_trip() -> None:
    odd = "pä\x00ss\u202e🙂"
    record = ClientRecord("c1", hash_password(odd), True, "us-east")
    assert decide("c1", odd, record).allowed
    assert not decide("c1", odd[:-1], record).allowed


def _handler(records: dict[str, ClientRecord]) -> CalloutHandler:
    async def lookup(client_id: str) -> ClientRecord | None:
        return records.get(client_id)

    return CalloutHandler(issuer_seed=ISSUER_SEED, shards=SHARDS, lookup=lookup)


async def test_the_handler_answers_allow_with_the_clients_user_jwt() -> None:
    answer = await _handler({"c1": GOOD}).answer(signed_request(request_claims("c1", "right")))
    assert answer.response is not None
    claims = jwt.decode_claims(answer.response.decode())
    assert claims["aud"] == SERVER.public_key.decode()
    user = jwt.decode_claims(claims["nats"]["jwt"])
    assert user["name"] == "c1"
    # Placed in its shard account (config mode: the user JWT's aud names the account).
    assert user["aud"] == account_of("c1", SHARDS) == shard_account(shard_of("c1", SHARDS))
    assert "clients.c1.alerts" in user["nats"]["sub"]["allow"]
    assert answer.event.allowed
    assert answer.event.client_type == "mqtt"
    assert answer.event.reason == "ok"
    assert answer.event.latency_ms >= 0


@pytest.mark.parametrize(
    ("user", "password", "client_type", "reason"),
    [
        ("c1", "wrong", "nats", "bad_password"),
        ("c2", "right", "nats", "disabled"),
        ("ghost", "right", "mqtt", "unknown_client"),
        ("c1/../c2", "right", "mqtt", "bad_client_id"),
        ("c1", "right", "leafnode", "unsupported_client"),
    ],
)
async def test_the_handler_denies_with_a_reason(
    user: str, password: str, client_type: str, reason: str
) -> None:
    handler = _handler({"c1": GOOD, "c2": DISABLED})
    answer = await handler.answer(signed_request(request_claims(user, password, client_type)))
    assert answer.response is not None
    claims = jwt.decode_claims(answer.response.decode())
    assert "jwt" not in claims["nats"]
    assert claims["nats"]["error"] == f"sentinel: {reason}"
    assert not answer.event.allowed
    assert answer.event.reason == reason


async def test_a_forged_request_gets_no_answer_and_is_audited() -> None:
    answer = await _handler({"c1": GOOD}).answer(b"not.a.jwt")
    assert answer.response is None
    assert answer.event.reason == "bad_request"
    assert not answer.event.allowed


async def test_a_database_failure_denies() -> None:
    async def broken(_client_id: str) -> ClientRecord | None:
        raise OSError("database is down")

    handler = CalloutHandler(issuer_seed=ISSUER_SEED, shards=SHARDS, lookup=broken)
    answer = await handler.answer(signed_request(request_claims("c1", "right")))
    assert answer.event.reason == "error"
    assert answer.response is not None
    assert "jwt" not in jwt.decode_claims(answer.response.decode())["nats"]
