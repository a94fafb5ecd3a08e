"""Client shard accounts (pure): the choice is stable, spread evenly, and names round-trip."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from backend.sentinel.errors import BadClientId
from backend.sentinel.shards import (
    DEFAULT_SHARDS,
    MAX_SHARDS,
    account_of,
    feed_user,
    shard_account,
    shard_accounts,
    shard_index,
    shard_of,
)


def test_the_shard_is_sha256_of_the_id_and_the_same_in_every_process() -> None:
    # Pinned values: the callout and every worker (other processes, other hash seeds)
    # must agree, so the function is SHA-256's first 8 bytes, never Python's hash().
    digest = hashlib.sha256(b"door-1").digest()
    assert shard_of("door-1", 8) == int.from_bytes(digest[:8], "big") % 8
    # Pinned: a change of the function would move every deployed client's account.
    assert [shard_of(f"c{n}", 8) for n in range(8)] == [3, 3, 5, 2, 2, 6, 2, 2]
    assert account_of("door-1", 8) == f"CLIENTS_{shard_of('door-1', 8)}"
    assert shard_of("door-1", 1) == 0


@pytest.mark.parametrize("count", [DEFAULT_SHARDS, 3, 16])
def test_clients_spread_roughly_evenly(count: int) -> None:
    clients = 20_000
    spread = Counter(shard_of(f"fan-{n}", count) for n in range(clients))
    assert set(spread) == set(range(count))
    mean = clients / count
    # A fair hash stays within a few standard deviations (sqrt(mean) ~ 50 at 8 shards).
    assert max(abs(n - mean) for n in spread.values()) < 0.1 * mean


def test_names_round_trip_and_only_real_shard_names_parse() -> None:
    assert shard_accounts(3) == ["CLIENTS_0", "CLIENTS_1", "CLIENTS_2"]
    assert [shard_index(name) for name in shard_accounts(12)] == list(range(12))
    for other in ("SENTINEL", "AUTH", "CLIENTS_", "CLIENTS_01", "CLIENTS_x", "clients_1"):
        assert shard_index(other) is None
    assert shard_account(7) == "CLIENTS_7"
    assert feed_user(7) == "sentinel-feed-7"


def test_bad_ids_and_layouts_are_refused() -> None:
    with pytest.raises(BadClientId):
        shard_of("a.>", 8)  # not a client id: the callout refuses it before placement
    for count in (0, -1, MAX_SHARDS + 1):
        with pytest.raises(ValueError, match="shards must be"):
            shard_of("c1", count)
