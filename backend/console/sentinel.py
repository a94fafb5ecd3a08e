"""The console's Sentinel panel: client connections per region and the pipeline's counters.

Where the numbers come from:

* **connections per region**: each node's monitor port (``AURORA_SENTINEL_MONITORS``).
  Clients live in the shard accounts ``CLIENTS_<k>`` (:mod:`backend.sentinel.shards`), as
  many as the cluster's layout has: ``/accstatz`` lists, in one answer, the node's accounts
  that have connections and how many, so the panel needs not know the layout. Each shard
  account also holds the worker's feed connection (``sentinel-feed-<k>``), so for each
  shard account with connections ``/connz?acc=CLIENTS_<k>&user=sentinel-feed-<k>`` counts
  those, which are subtracted and shown apart. Every request is bounded by
  :data:`POLL_TIMEOUT_S`; a node that refuses or does not answer in time is ``down``.
* **counters**: the Redis hash ``aurora:sentinel:counters`` whose integer fields the
  Sentinel's worker increments (``HINCRBY``) as it inspects, delivers, flags and
  quarantines messages.

One :class:`SentinelWatch` per backend polls while a console is open (not otherwise) and
keeps the latest summary; every page's event stream reads that summary, so ten open
consoles cost the nodes what one does. The parsing is pure and unit-tested.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import httpx
from redis.exceptions import RedisError

from backend.sentinel.naming import COUNTERS_KEY
from backend.sentinel.reporting import COUNTER_FIELDS
from backend.sentinel.shards import feed_user, shard_account, shard_index

log = logging.getLogger(__name__)

#: How long one monitor request may take before its node counts as down.
POLL_TIMEOUT_S = 1.0
#: How often the summary is refreshed while someone watches.
POLL_EVERY_S = 1.0
#: Polling stops this long after the last page asked for the summary.
IDLE_AFTER_S = 10.0
#: Service connections are few; a page of this many always holds them all.
_SERVICE_LIMIT = 256


@dataclass(frozen=True)
class RegionState:
    """One node as the panel shows it."""

    region: str
    status: str  # "up" or "down"
    clients: int | None = None
    services: int | None = None
    reason: str = ""


def connz_count(answer: Any, key: str) -> int:
    """A count (``num_connections`` of ``/connz``, ``conns`` of an ``/accstatz`` entry);
    ValueError if the answer has none."""
    value = answer.get(key) if isinstance(answer, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"monitor answer without a count in {key!r}")
    return value


def shard_connections(answer: Any) -> dict[int, int]:
    """Connections per client shard (by index) from an ``/accstatz`` answer (accounts other
    than shards ignored); ValueError if it is not one."""
    entries = answer.get("account_statz") if isinstance(answer, dict) else None
    if not isinstance(entries, list):
        raise ValueError("/accstatz answer without 'account_statz'")  # noqa: TRY004 (the answer is bad, not the call)
    counts: dict[int, int] = {}
    for entry in entries:
        name = entry.get("acc") if isinstance(entry, dict) else None
        index = shard_index(name) if isinstance(name, str) else None
        if index is not None:
            counts[index] = connz_count(entry, "conns")
    return counts


def region_state(region: str, accounts: Any, services: list[Any]) -> RegionState:
    """A node that answered: its clients are the shard accounts' connections (``/accstatz``
    answer ``accounts``) minus the services' (``/connz`` answers ``services``)."""
    try:
        in_accounts = sum(shard_connections(accounts).values())
        own = sum(connz_count(answer, "num_connections") for answer in services)
    except ValueError as error:
        return RegionState(region, "down", reason=str(error))
    return RegionState(region, "up", clients=max(in_accounts - own, 0), services=own)


def counters_from_hash(raw: Mapping[Any, Any]) -> dict[str, int | None]:
    """The four counters from ``HGETALL``; a missing field is 0, a non-integer one None."""
    values = {
        (k.decode(errors="replace") if isinstance(k, bytes) else str(k)): v for k, v in raw.items()
    }
    counters: dict[str, int | None] = {}
    for name in COUNTER_FIELDS:
        value = values.get(name, 0)
        try:
            counters[name] = int(value)
        except (TypeError, ValueError):
            counters[name] = None  # shown as "?" rather than a guess
    return counters


def summary(
    regions: list[RegionState], counters: dict[str, int | None] | None, counters_note: str = ""
) -> dict[str, Any]:
    """The ``sentinel`` console event."""
    return {
        "regions": [asdict(region) for region in regions],
        "counters": counters,
        "counters_note": counters_note,
    }


class SentinelWatch:
    """Polls the nodes and the counters while a console is open; see the module doc."""

    def __init__(self, monitors: Mapping[str, str], redis: Any) -> None:
        self.monitors = dict(monitors)
        self._redis = redis
        self._latest: dict[str, Any] | None = None
        self._wanted_at = float("-inf")
        self._wanted = asyncio.Event()

    def latest(self) -> dict[str, Any] | None:
        """The last summary (None before the first poll); marks the panel as watched."""
        self._wanted_at = time.monotonic()
        self._wanted.set()
        return self._latest

    async def run(self) -> None:
        """Poll until cancelled; sleeps while nobody has asked for :data:`IDLE_AFTER_S`."""
        timeout = httpx.Timeout(POLL_TIMEOUT_S)
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as http:
            while True:
                if time.monotonic() - self._wanted_at > IDLE_AFTER_S:
                    self._wanted.clear()
                    await self._wanted.wait()
                self._latest = await self.poll(http)
                await asyncio.sleep(POLL_EVERY_S)

    async def poll(self, http: httpx.AsyncClient) -> dict[str, Any]:
        """One summary: every node and the counters, concurrently."""
        regions, (counters, note) = await asyncio.gather(
            asyncio.gather(*(self._region(http, r, url) for r, url in self.monitors.items())),
            self._counters(),
        )
        return summary(list(regions), counters, note)

    async def _region(self, http: httpx.AsyncClient, region: str, monitor: str) -> RegionState:
        # Every request ends within the timeout, so none outlives this poll.
        answers = await _answers(region, _get_json(http, f"{monitor}/accstatz", {}))
        if isinstance(answers, RegionState):
            return answers
        (accounts,) = answers
        try:
            shards = shard_connections(accounts)
        except ValueError as error:
            return RegionState(region, "down", reason=str(error))
        feeds = await _answers(
            region,
            *(
                _get_json(
                    http,
                    f"{monitor}/connz",
                    {"acc": shard_account(k), "user": feed_user(k), "limit": _SERVICE_LIMIT},
                )
                for k in sorted(shards)
            ),
        )
        if isinstance(feeds, RegionState):
            return feeds
        return region_state(region, accounts, feeds)

    async def _counters(self) -> tuple[dict[str, int | None] | None, str]:
        try:
            async with asyncio.timeout(POLL_TIMEOUT_S):
                raw = await self._redis.hgetall(COUNTERS_KEY)
        except (RedisError, OSError, TimeoutError) as error:
            log.warning("console: Sentinel counters unreadable: %r", error)
            return None, f"Redis: {_reason(error)}"
        return counters_from_hash(raw), ""


async def _answers(region: str, *requests: Awaitable[Any]) -> list[Any] | RegionState:
    """The answers of concurrent monitor requests, or ``region`` down, with the reason of
    the first that failed."""
    answers = await asyncio.gather(*requests, return_exceptions=True)
    for answer in answers:
        if isinstance(answer, httpx.TimeoutException):
            return RegionState(region, "down", reason=f"no answer within {POLL_TIMEOUT_S:g} s")
        if isinstance(answer, Exception):
            # Refused, HTTP error, not JSON, a URL httpx rejects: the node is down for
            # the panel, and the reason is on its tile; the watch itself keeps going.
            return RegionState(region, "down", reason=_reason(answer))
        if isinstance(answer, BaseException):
            raise answer
    return list(answers)


async def _get_json(http: httpx.AsyncClient, url: str, params: dict[str, Any]) -> Any:
    response = await http.get(url, params=params)
    if response.status_code != 200:
        raise ValueError(f"HTTP {response.status_code} from {url}")
    return response.json()


def _reason(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text[:200]
