"""The callouts' verified-credential cache and its use by the handler, without servers."""

from __future__ import annotations

import pytest

from backend.sentinel.authcache import Verified, VerifiedCache, cache_key
from backend.sentinel.authdb import ClientRecord, hash_password
from backend.sentinel.callout import CalloutHandler
from backend.sentinel.errors import SentinelError
from tests.unit.sentinel.helpers import ISSUER_SEED, request_claims, signed_request

KEY = cache_key(ISSUER_SEED)


def test_a_cached_credential_answers_only_its_own_password_until_it_expires() -> None:
    now = [0.0]
    cache = VerifiedCache(KEY, ttl_s=10, clock=lambda: now[0])
    assert cache.hit("c1", "right") is None
    cache.remember("c1", "right", "eu-west")
    assert cache.hit("c1", "right") == "eu-west"
    assert cache.hit("c1", "wrong") is None
    assert cache.hit("c2", "right") is None  # the MAC binds the client id too
    now[0] = 10.5
    assert cache.hit("c1", "right") is None
    assert len(cache) == 0


def test_forgetting_a_changed_client_drops_its_entry_only() -> None:
    cache = VerifiedCache(KEY, ttl_s=60)
    cache.remember("c1", "right", "eu-west")
    cache.remember("c2", "right", "us-east")
    assert cache.forget(["c1", "ghost"]) == 1
    assert cache.hit("c1", "right") is None
    assert cache.hit("c2", "right") == "us-east"


def test_peers_share_entries_through_messages_and_ignore_their_own_echo() -> None:
    one = VerifiedCache(KEY, ttl_s=60, instance="callout-1")
    two = VerifiedCache(KEY, ttl_s=30, instance="callout-2")
    message = one.remember("c1", "right", "ap-south")
    assert message is not None
    assert b"right" not in message.to_bytes()  # never the password
    parsed = Verified.from_bytes(message.to_bytes())
    assert not one.accept(parsed)  # our own echo
    assert two.accept(parsed)
    assert two.hit("c1", "right") == "ap-south"
    assert two.hit("c1", "wrong") is None
    # A cache under another deployment's key cannot use the entry.
    stranger = VerifiedCache(cache_key("SAOTHERSEED"), ttl_s=60, instance="x")
    stranger.accept(parsed)
    assert stranger.hit("c1", "right") is None


def test_caching_off_remembers_nothing() -> None:
    cache = VerifiedCache(KEY, ttl_s=0)
    assert cache.remember("c1", "right", "eu-west") is None
    assert cache.hit("c1", "right") is None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[]",
        b"{}",
        b'{"client_id": "c1.>", "mac": "00", "region": "x", "ttl_s": 1, "instance": "i"}',
        b'{"client_id": "c1", "mac": "zz", "region": "x", "ttl_s": 1, "instance": "i"}',
        b'{"client_id": "c1", "mac": "00", "region": "x", "ttl_s": 1, "instance": "i"}',
        b'{"client_id": "c1", "mac": "' + b"00" * 32 + b'", "region": "x", "ttl_s": -1, '
        b'"instance": "i"}',
        b"\xff" * 2000,
    ],
)
def test_a_malformed_peer_message_is_refused_with_a_reason(data: bytes) -> None:
    with pytest.raises(SentinelError, match="verified-credential message"):
        Verified.from_bytes(data)


async def test_the_handler_answers_a_repeat_from_the_cache_without_the_auth_db() -> None:
    record = ClientRecord("c1", hash_password("right"), True, "eu-west")
    lookups: list[str] = []
    shared: list[Verified] = []

    async def lookup(client_id: str) -> ClientRecord | None:
        lookups.append(client_id)
        return record

    async def share(entry: Verified) -> None:
        shared.append(entry)

    cache = VerifiedCache(KEY, ttl_s=60, instance="callout-1")
    handler = CalloutHandler(
        issuer_seed=ISSUER_SEED, shards=8, lookup=lookup, cache=cache, share=share
    )
    request = signed_request(request_claims("c1", "right"))
    assert (await handler.answer(request)).event.allowed
    assert (await handler.answer(request)).event.allowed
    assert lookups == ["c1"]  # the repeat needed neither the row nor the KDF
    assert [entry.client_id for entry in shared] == ["c1"]
    wrong = await handler.answer(signed_request(request_claims("c1", "wrong")))
    assert wrong.event.reason == "bad_password"
    # Disabled: once the poll forgets it, the row decides again.
    cache.forget(["c1"])
    record = ClientRecord("c1", record.password_hash, False, "eu-west")
    assert (await handler.answer(request)).event.reason == "disabled"
