"""Client accounts of the Sentinel: which of K shard accounts a client lives in (pure).

Why shards: every QoS 1 MQTT subscription is a durable consumer of its *account's* one
``$MQTT_msgs`` interest stream, and nats-server checks every consumer of that stream on
each store and each ack (``checkForInterestWithSubject`` in server/stream.go). With all
clients in one account the cost of one alert grows with the number of subscribers:
measured, 1,000 QoS 1 subscribers took 600 msg/s and 4,245 held the publisher to 287 msg/s.
Spreading the clients over K accounts ``CLIENTS_0 .. CLIENTS_{K-1}`` gives each shard's
``$MQTT_msgs`` about N/K consumers.

How a client's shard is chosen: the first 8 bytes of SHA-256 of its client id, big-endian,
modulo K. A pure function of the id (never Python's ``hash()``, which is salted per
process), so the callout (which places the client, user JWT ``aud``) and every worker
(which feeds the client's QoS 1 copy into that account's ``$MQTT_msgs``) agree, across
processes and restarts. Changing K moves clients between accounts: a persistent session's
backlog stays behind in the old account, so K is part of a deployment's layout, like the
ingress partitions.

What stays in the record account ``SENTINEL``: the 72 h record ``MQTT_ALERTS``, the bridge
and the workers. It exports the stream ``clients.*.alerts`` and every shard imports it, so
the record's core copy still reaches NATS-protocol clients and MQTT QoS 0 subscriptions in
the shards; a client's own permissions (:mod:`backend.sentinel.permissions`) still let it
subscribe to its own ``clients.<id>.alerts`` only.
"""

from __future__ import annotations

import hashlib

from backend.sentinel.naming import check_client_id

#: Shard accounts of a default deployment (1,000 QoS 1 consumers per stream kept up with
#: 600 msg/s on the bench; 8 shards hold the issue's 5,000 at ~625 each).
DEFAULT_SHARDS = 8
#: Most shards a layout may have (each is an account with its own MQTT streams, R3).
MAX_SHARDS = 256
#: The account that keeps the record and the services (bench/services/sentinel_config.py).
RECORD_ACCOUNT = "SENTINEL"
SHARD_ACCOUNT_PREFIX = "CLIENTS_"
#: The worker's identity in each shard account (publishes the QoS 1 copy there).
FEED_USER_PREFIX = "sentinel-feed-"


def check_shards(count: int) -> int:
    """``count`` when it is a valid number of shards (1..MAX_SHARDS), else ValueError."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_SHARDS:
        raise ValueError(f"shards must be 1..{MAX_SHARDS}, not {count!r}")
    return count


def shard_of(client_id: str, count: int) -> int:
    """The shard (0..count-1) of ``client_id``: SHA-256's first 8 bytes modulo ``count``."""
    digest = hashlib.sha256(check_client_id(client_id).encode()).digest()
    return int.from_bytes(digest[:8], "big") % check_shards(count)


def shard_account(index: int) -> str:
    """``CLIENTS_<index>``: the account name of shard ``index``."""
    return f"{SHARD_ACCOUNT_PREFIX}{index}"


def account_of(client_id: str, count: int) -> str:
    """The account ``client_id`` is placed in when there are ``count`` shards."""
    return shard_account(shard_of(client_id, count))


def shard_accounts(count: int) -> list[str]:
    """Every shard account of a ``count``-shard layout, in shard order."""
    return [shard_account(index) for index in range(check_shards(count))]


def feed_user(index: int) -> str:
    """``sentinel-feed-<index>``: the worker's service user in shard ``index``'s account."""
    return f"{FEED_USER_PREFIX}{index}"


def shard_index(account: str) -> int | None:
    """The shard of a shard account's name (``CLIENTS_<k>``), None for any other name."""
    suffix = account.removeprefix(SHARD_ACCOUNT_PREFIX)
    if suffix == account or not suffix.isascii() or not suffix.isdigit():
        return None
    if shard_account(int(suffix)) != account:  # "CLIENTS_01" is no shard's name
        return None
    return int(suffix)
