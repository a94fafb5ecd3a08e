"""What the inspection needs from outside, fed in by the worker: the I/O half of the stages.

The stages are pure (``backend.sentinel.inspection``); these loops give them their inputs:

* **Auth DB snapshot**: ``(client_id, enabled)`` of every ``sentinel_clients`` row, read
  every ``refresh_s``. A message to a client the snapshot does not know is looked up once
  before it is judged (:meth:`Feeds.know`), so a client created a moment before its first
  alert is not quarantined as unknown; ids that are still unknown are remembered for
  ``refresh_s`` so a flood of made-up ids costs one query each, not one per message.
* **Callout audit**: ``aurora:sentinel:auth`` is tailed (from the moment the worker starts)
  and each decision is handed to the auth stage (credential stuffing, two regions at once).
  The region is the node that asked (``server`` = ``sentinel-<region>``); the source is the
  remote address. Only the worker that owns partition 0 does this (``observe_auth``): the
  decisions concern connects, not partitions, and one event per attack is the point.
* **Shared IOCs**: rows a peer shared over ``aurora.ioc_sharing``, stored by the site's
  federation in ``federation_iocs`` (``FederationStore.store_iocs``), polled every
  ``refresh_s`` and added as patterns (no restart).
* **Tick**: the aggregator's windows close on time, not only when a message arrives.

Every loop survives its source being away (the backend creates ``federation_iocs``; Redis
may restart): it logs once per outage and tries again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from backend.federation.tables import SharedIocRow
from backend.sentinel.authdb import AuthDb
from backend.sentinel.inspection import AuthEvent, Inspector, SecurityEvent
from backend.sentinel.naming import AUTH_AUDIT_STREAM

log = logging.getLogger("backend.sentinel.feeds")

Report = Callable[[Iterable[SecurityEvent]], Awaitable[None]]
#: Unknown ids remembered between refreshes, at most (bounded under a flood of new ids).
MAX_UNKNOWN = 10_000
AUDIT_BATCH = 500


def auth_event(entry_id: str, fields: dict[str, str]) -> AuthEvent | None:
    """An audit stream entry as the auth stage's :class:`AuthEvent` (None if unreadable)."""
    try:
        at_s = int(entry_id.split("-", 1)[0]) / 1000
    except ValueError:
        return None
    result = fields.get("result")
    if result not in ("allowed", "denied"):
        return None
    server = fields.get("server", "")
    return AuthEvent(
        client_id=fields.get("client_id", "")[:128],
        source=fields.get("remote", "")[:128] or "?",
        region=server.removeprefix("sentinel-") or "?",
        allowed=result == "allowed",
        reason=fields.get("reason", "")[:64],
        at_s=at_s,
    )


class Feeds:
    """The inspector's outside inputs (see the module doc); one per worker."""

    def __init__(
        self,
        inspector: Inspector,
        authdb: AuthDb,
        redis: aioredis.Redis,
        report: Report,
        *,
        observe_auth: bool,
        refresh_s: float = 2.0,
    ) -> None:
        self._inspector = inspector
        self._authdb = authdb
        self._redis = redis
        self._report = report
        self._observe_auth = observe_auth
        self._refresh_s = refresh_s
        self._unknown: dict[str, float] = {}
        self._iocs_since: datetime | None = None
        self._known: set[str] = set()
        self._failing: set[str] = set()
        self.audit_seen = 0

    async def start(self) -> None:
        """First snapshot and IOCs before the worker takes messages (errors logged)."""
        await self._refresh_clients()
        await self._refresh_iocs()

    async def run(self) -> None:
        """Every loop until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._every(self._refresh_clients))
            tasks.create_task(self._every(self._refresh_iocs))
            tasks.create_task(self._ticks())
            if self._observe_auth:
                tasks.create_task(self._tail_audit())

    async def know(self, client_ids: Iterable[str]) -> None:
        """Look up clients the snapshot does not know yet (before their message is judged)."""
        now = time.monotonic()
        missing = [
            c
            for c in set(client_ids)
            if c not in self._known and now - self._unknown.get(c, -1e9) > self._refresh_s
        ]
        for client_id in missing:
            try:
                record = await self._authdb.get(client_id)
            except SQLAlchemyError as error:
                self._trouble("auth db", error)
                return
            if record is None:
                self._unknown[client_id] = now
                if len(self._unknown) > MAX_UNKNOWN:
                    self._unknown.pop(next(iter(self._unknown)))
            else:
                self._known.add(client_id)
                self._inspector.auth.update_client(client_id, enabled=record.enabled)

    async def _every(self, refresh: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            await refresh()

    async def _refresh_clients(self) -> None:
        try:
            clients = await self._authdb.snapshot()
        except SQLAlchemyError as error:
            self._trouble("auth db", error)
            return
        self._ok("auth db")
        self._inspector.auth.set_clients(clients)
        self._known = {client_id for client_id, _ in clients}
        self._unknown.clear()

    async def _refresh_iocs(self) -> None:
        query = select(SharedIocRow.value, SharedIocRow.origin_site, SharedIocRow.last_seen)
        if self._iocs_since is not None:
            query = query.where(SharedIocRow.last_seen >= self._iocs_since)
        try:
            async with self._authdb.store.sessionmaker() as session:
                rows = (await session.execute(query.order_by(SharedIocRow.last_seen))).all()
        except SQLAlchemyError as error:
            # Normal until the site's backend created the federation tables.
            self._trouble("shared IOCs", error, quiet=True)
            return
        self._ok("shared IOCs")
        if rows:
            self._iocs_since = rows[-1][2]
            added = self._inspector.share_iocs((value, origin) for value, origin, _ in rows)
            if added:
                log.info("%d shared IOCs are patterns now", added)

    async def _ticks(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            events = self._inspector.tick(time.time())
            if events:
                await self._report(events)

    async def _tail_audit(self) -> None:
        last = "$"
        while True:
            try:
                reply: Any = await self._redis.xread(
                    {AUTH_AUDIT_STREAM: last}, count=AUDIT_BATCH, block=1000
                )
            except (RedisError, OSError) as error:
                self._trouble("auth audit", error)
                await asyncio.sleep(1.0)
                continue
            self._ok("auth audit")
            events: list[SecurityEvent] = []
            for _stream, entries in reply or ():
                for entry_id, raw in entries:
                    last = _text(entry_id)
                    fields = {_text(k): _text(v) for k, v in raw.items()}
                    event = auth_event(last, fields)
                    if event is not None:
                        self.audit_seen += 1
                        events.extend(self._inspector.observe_auth(event))
            if events:
                await self._report(events)

    def _trouble(self, what: str, error: Exception, *, quiet: bool = False) -> None:
        if what not in self._failing:
            self._failing.add(what)
            (log.debug if quiet else log.warning)("%s not readable: %s", what, error)

    def _ok(self, what: str) -> None:
        if what in self._failing:
            self._failing.discard(what)
            log.info("%s readable again", what)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
