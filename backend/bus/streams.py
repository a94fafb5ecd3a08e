"""Redis Streams of one site: ``aurora:cps:alerts``, ``aurora:cps:telemetry``, ``aurora:audit``.

Every entry has the fields ``type`` and ``data`` (compact JSON), plus ``trace`` when the
MQTT message carried the v5 user property ``aurora-trace`` (copied verbatim, so the load tool
measures end-to-end latency without touching the contract JSON). Streams are capped with an
approximate MAXLEN (cheap trimming). Readers use consumer groups: :meth:`StreamBus.ensure_group`
and :meth:`StreamBus.read_group`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

ALERTS_STREAM = "aurora:cps:alerts"
TELEMETRY_STREAM = "aurora:cps:telemetry"
AUDIT_STREAM = "aurora:audit"
#: Messages the ingest gave up on (processing failed on every delivery), with the reason.
DEADLETTER_STREAM = "aurora:cps:deadletter"
STREAMS = (ALERTS_STREAM, TELEMETRY_STREAM, AUDIT_STREAM)


def compact(data: Any) -> str:
    """Compact JSON, the encoding of every ``data`` field."""
    return json.dumps(data, separators=(",", ":"), default=str)


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One entry to append: ``stream`` gets ``{"type", "data", ["trace"], **extra}``."""

    stream: str
    type: str
    data: Any
    trace: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def fields(self) -> dict[str, str]:
        """The Redis fields of the entry (``data`` as given if already a JSON string)."""
        encoded = self.data if isinstance(self.data, str) else compact(self.data)
        out = {"type": self.type, "data": encoded}
        if self.trace is not None:
            out["trace"] = self.trace
        out.update(self.extra)
        return out


@dataclass(frozen=True, slots=True)
class ReadEntry:
    """An entry read back: its stream id, type, decoded data and trace."""

    stream: str
    id: str
    type: str
    data: Any
    trace: str | None
    fields: dict[str, str]

    def as_json(self) -> dict[str, Any]:
        """The entry as the API shows it."""
        out: dict[str, Any] = {"id": self.id, "type": self.type, "data": self.data}
        if self.trace is not None:
            out["trace"] = self.trace
        return out


def _decode(stream: str, entry_id: str, raw: Mapping[str, str]) -> ReadEntry:
    try:
        data = json.loads(raw.get("data", "null"))
    except json.JSONDecodeError:
        data = raw.get("data")
    return ReadEntry(
        stream=stream,
        id=entry_id,
        type=raw.get("type", ""),
        data=data,
        trace=raw.get("trace"),
        fields=dict(raw),
    )


#: KEYS: the streams, then the marker set. ARGV: maxlen, #groups, the groups as one string
#: of NUL-separated fields ("i[,j...]", type, data, trace ("" = none) per group), then the
#: markers to add and to remove, each list one NUL-separated string. NUL cannot occur in any
#: field: JSON escapes it and MQTT strings may not contain U+0000 (the caller checks anyway).
_ADD_MANY_LUA = """
local maxlen, groups = ARGV[1], tonumber(ARGV[2])
local blob = ARGV[3]
local set_key = KEYS[#KEYS]
local pos = 1
local function field()
  local stop = string.find(blob, "\0", pos, true)
  local value
  if stop then
    value = string.sub(blob, pos, stop - 1)
    pos = stop + 1
  else
    value = string.sub(blob, pos)
    pos = #blob + 1
  end
  return value
end
for _ = 1, groups do
  local targets, kind, data, trace = field(), field(), field(), field()
  for target in string.gmatch(targets, "%d+") do
    if trace == "" then
      redis.call("XADD", KEYS[tonumber(target)], "MAXLEN", "~", maxlen, "*",
                 "type", kind, "data", data)
    else
      redis.call("XADD", KEYS[tonumber(target)], "MAXLEN", "~", maxlen, "*",
                 "type", kind, "data", data, "trace", trace)
    end
  end
end
for member in string.gmatch(ARGV[4], "[^%z]+") do
  redis.call("SADD", set_key, member)
end
for member in string.gmatch(ARGV[5], "[^%z]+") do
  redis.call("SREM", set_key, member)
end
return groups
"""


@dataclass(frozen=True, slots=True)
class _Batch:
    """What :meth:`StreamBus.add_many` writes together: entries and redelivery markers."""

    entries: Sequence[StreamEntry]
    set_key: str | None
    set_add: Sequence[str]
    set_remove: Sequence[str]


class StreamBus:
    """Appends to and reads the site's streams. The Redis client is created eagerly but
    connects lazily, so a Redis outage shows in /healthz instead of failing startup."""

    def __init__(self, redis_url: str, maxlen: int) -> None:
        # Typed Any on purpose: redis-py types replies as bytes|str unions, but with
        # decode_responses=True every reply here is str.
        self.redis: Any = Redis.from_url(redis_url, decode_responses=True)
        self.maxlen = maxlen
        self._script = self.redis.register_script(_ADD_MANY_LUA)
        self._closed = False

    async def ping(self) -> bool:
        """True when Redis answers PING."""
        try:
            return bool(await self.redis.ping())
        except (RedisError, OSError):
            return False

    async def add(self, entry: StreamEntry) -> str:
        """Append one entry; returns its stream id."""
        entry_id: str = await self.redis.xadd(
            entry.stream, entry.fields(), maxlen=self.maxlen, approximate=True
        )
        return entry_id

    async def add_many(
        self,
        entries: Sequence[StreamEntry],
        *,
        set_key: str | None = None,
        set_add: Sequence[str] = (),
        set_remove: Sequence[str] = (),
    ) -> None:
        """Append ``entries`` atomically in one round trip (a Lua script; MULTI/EXEC for
        entries with extra fields).

        The ingest passes its redelivery markers too (``set_add`` / ``set_remove`` on
        ``set_key``), so the entries and the "processed" markers land together or not at all.
        """
        if not entries and not set_add and not set_remove:
            return
        batch = _Batch(entries, set_key, set_add, set_remove)
        if all(not entry.extra for entry in entries):
            await self._add_many_script(batch)
            return
        await self._add_many_transaction(batch)

    async def _add_many_transaction(self, batch: _Batch) -> None:
        set_key, set_add, set_remove = batch.set_key, batch.set_add, batch.set_remove
        async with self.redis.pipeline(transaction=True) as pipe:
            for entry in batch.entries:
                pipe.xadd(entry.stream, entry.fields(), maxlen=self.maxlen, approximate=True)
            if set_key is not None and set_add:
                pipe.sadd(set_key, *set_add)
            if set_key is not None and set_remove:
                pipe.srem(set_key, *set_remove)
            await pipe.execute()

    async def _add_many_script(self, batch: _Batch) -> None:
        # One EVALSHA per batch instead of a command per entry: client-side command
        # packing was the largest Redis cost of the hot path. Consecutive entries with the
        # same type/data/trace (a telemetry reading goes to two streams) are sent once
        # with both stream indexes.
        keys: list[str] = []
        index: dict[str, int] = {}
        groups: list[list[Any]] = []
        for entry in batch.entries:
            position = index.get(entry.stream)
            if position is None:
                keys.append(entry.stream)
                position = index[entry.stream] = len(keys)
            data = entry.data if isinstance(entry.data, str) else compact(entry.data)
            trace = entry.trace if entry.trace is not None else ""
            last = groups[-1] if groups else None
            if last is not None and last[1] == entry.type and last[2] is data and last[3] == trace:
                last[0] += f",{position}"
                continue
            groups.append([str(position), entry.type, data, trace])
        # One argument for all groups: per-argument encoding in redis-py was the next cost.
        blob = "\0".join(field for group in groups for field in group)
        adds, removes = "\0".join(batch.set_add), "\0".join(batch.set_remove)
        separators_ok = (
            blob.count("\0") == max(4 * len(groups) - 1, 0)
            and adds.count("\0") == max(len(batch.set_add) - 1, 0)
            and removes.count("\0") == max(len(batch.set_remove) - 1, 0)
        )
        if not separators_ok:
            # A field carried a NUL after all: take the plain transaction instead.
            await self._add_many_transaction(batch)
            return
        keys.append(batch.set_key or "aurora:unused")
        args: list[Any] = [self.maxlen, len(groups), blob, adds, removes]
        await self._script(keys=keys, args=args)

    async def ensure_group(self, stream: str, group: str, start_id: str = "0") -> None:
        """Create consumer group ``group`` on ``stream`` (and the stream) if missing."""
        try:
            await self.redis.xgroup_create(stream, group, id=start_id, mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def read_group(
        self,
        stream: str,
        group: str,
        consumer: str,
        *,
        count: int = 100,
        block_ms: int | None = None,
    ) -> list[ReadEntry]:
        """Read new entries for ``consumer`` of ``group``; acknowledge them with :meth:`ack`."""
        reply = await self.redis.xreadgroup(
            group, consumer, {stream: ">"}, count=count, block=block_ms
        )
        out: list[ReadEntry] = []
        for name, entries in reply or []:
            out.extend(_decode(name, entry_id, raw) for entry_id, raw in entries)
        return out

    async def ack(self, stream: str, group: str, *entry_ids: str) -> int:
        """XACK entries read through a consumer group."""
        if not entry_ids:
            return 0
        acked: int = await self.redis.xack(stream, group, *entry_ids)
        return acked

    async def latest(self, stream: str, count: int = 100) -> list[ReadEntry]:
        """The newest ``count`` entries of ``stream``, newest first."""
        reply = await self.redis.xrevrange(stream, count=count)
        return [_decode(stream, entry_id, raw) for entry_id, raw in reply]

    async def scan(self, stream: str, start: str = "-", count: int = 1000) -> list[ReadEntry]:
        """Entries of ``stream`` oldest first, from ``start`` (inclusive)."""
        reply = await self.redis.xrange(stream, min=start, count=count)
        return [_decode(stream, entry_id, raw) for entry_id, raw in reply]

    async def tail_ids(self, streams: Sequence[str]) -> dict[str, str]:
        """The id of each stream's newest entry (``0-0`` for an empty stream): where a
        follower starts so it sees only what comes next."""
        out: dict[str, str] = {}
        for stream in streams:
            reply = await self.redis.xrevrange(stream, count=1)
            out[stream] = reply[0][0] if reply else "0-0"
        return out

    async def read_after(
        self, after: Mapping[str, str], *, block_ms: int, count: int = 100
    ) -> list[ReadEntry]:
        """Entries newer than ``after[stream]`` in each stream, waiting up to ``block_ms``
        for the first (XREAD BLOCK); the caller advances ``after`` to what it got."""
        reply = await self.redis.xread(dict(after), count=count, block=block_ms)
        return [
            _decode(stream, entry_id, raw)
            for stream, entries in (reply or [])
            for entry_id, raw in entries
        ]

    async def aclose(self) -> None:
        """Close the connection pool; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        await self.redis.aclose()
