"""The auth-callout service: answers ``$SYS.REQ.USER.AUTH`` from the Auth DB.

:class:`CalloutHandler` is the decision path (request bytes in, response bytes and an audit
event out) and needs no server; :func:`run_callout` connects it to the cluster in the queue
group :data:`~backend.sentinel.naming.CALLOUT_QUEUE`, so several instances share the load
and one may die.

An allowed client is placed in its shard account (:func:`backend.sentinel.shards.account_of`,
the user JWT's ``aud``): the worker feeds its QoS 1 copies into that account's
``$MQTT_msgs``, so both must use the same number of shards.

A request that cannot be verified gets no answer (there is no trustworthy server to
address one to); the server then refuses that connect at its callout timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import nkeys

from backend.sentinel import jwt
from backend.sentinel.audit import Auditor, AuthEvent
from backend.sentinel.authcache import Verified, VerifiedCache
from backend.sentinel.authdb import ClientRecord, Decision, Reason, decide
from backend.sentinel.errors import BadAuthRequest, SentinelError
from backend.sentinel.naming import check_client_id
from backend.sentinel.permissions import ClientType, client_permissions
from backend.sentinel.shards import account_of, check_shards

log = logging.getLogger("backend.sentinel.callout")

#: Client kinds that may connect as Sentinel clients (MQTT over WebSocket reports ``mqtt``).
SUPPORTED = (ClientType.NATS, ClientType.MQTT, ClientType.WEBSOCKET)

Lookup = Callable[[str], Awaitable[ClientRecord | None]]
Share = Callable[[Verified], Awaitable[None]]


@dataclass(frozen=True)
class Answer:
    """What to send back (None: nothing) and what to audit."""

    response: bytes | None
    event: AuthEvent


class CalloutHandler:
    """Request -> decision -> signed response, for one issuer and ``shards`` client accounts."""

    def __init__(
        self,
        *,
        issuer_seed: str,
        shards: int,
        lookup: Lookup,
        cache: VerifiedCache | None = None,
        share: Share | None = None,
        instance: str = "sentinel-callout",
    ) -> None:
        self._issuer = nkeys.from_seed(issuer_seed.encode())
        self._shards = check_shards(shards)
        self._lookup = lookup
        self._cache = cache
        self._share = share
        self._instance = instance

    async def answer(self, data: bytes, started: float | None = None) -> Answer:
        """The response to one raw request (never raises for bad input)."""
        began = time.perf_counter() if started is None else started
        try:
            request = jwt.decode_request(data)
        except BadAuthRequest as error:
            log.warning("auth request refused unanswered: %s", error)
            event = self._event(
                began,
                client_id="",
                client_type="other",
                remote="",
                allowed=False,
                reason=Reason.BAD_REQUEST,
                server="",
            )
            return Answer(None, event)
        client_id = request.username
        decision = await self._decide(request)
        user = None
        if decision.allowed:
            user = jwt.user_jwt(
                issuer=self._issuer,
                user_nkey=request.user_nkey,
                name=client_id,
                account=account_of(client_id, self._shards),
                permissions=client_permissions(client_id, request.client_type),
            )
        response = jwt.response_jwt(
            issuer=self._issuer,
            user_nkey=request.user_nkey,
            server_id=request.server_id,
            user=user,
            error=f"sentinel: {decision.reason.value}",
        )
        event = self._event(
            began,
            client_id=client_id,
            client_type=request.client_type.value,
            remote=request.remote_host,
            allowed=decision.allowed,
            reason=decision.reason,
            server=request.server_name,
            cached=decision.cached,
        )
        return Answer(response.encode(), event)

    async def _decide(self, request: jwt.AuthRequest) -> Decision:
        if request.client_type not in SUPPORTED:
            return Decision(False, Reason.UNSUPPORTED_CLIENT)
        try:
            check_client_id(request.username)
        except SentinelError:
            return Decision(False, Reason.BAD_CLIENT_ID)
        cache = self._cache
        if cache is not None:
            region = cache.hit(request.username, request.password)
            if region is not None:  # verified within the TTL, row unchanged since
                return Decision(True, Reason.OK, region, cached=True)
        try:
            record = await self._lookup(request.username)
        except Exception as error:  # the database is down: deny, say why
            log.warning("Auth DB lookup failed, denying %s: %s", request.username, error)
            return Decision(False, Reason.ERROR)
        # The KDF is CPU-bound and releases the GIL: keep the event loop answering.
        decision = await asyncio.to_thread(decide, request.username, request.password, record)
        if decision.allowed and cache is not None and decision.region is not None:
            shared = cache.remember(request.username, request.password, decision.region)
            if shared is not None and self._share is not None:
                try:
                    await self._share(shared)
                except Exception as error:  # peers miss one entry: they pay one KDF
                    log.warning("could not share a verified credential: %s", error)
        return decision

    def _event(
        self,
        began: float,
        *,
        client_id: str,
        client_type: str,
        remote: str,
        allowed: bool,
        reason: Reason,
        server: str,
        cached: bool = False,
    ) -> AuthEvent:
        return AuthEvent(
            client_id=client_id,
            client_type=client_type,
            remote=remote,
            allowed=allowed,
            reason=reason.value,
            latency_ms=(time.perf_counter() - began) * 1000,
            server=server,
            instance=self._instance,
            cached=cached,
        )


async def serve(
    handler: CalloutHandler,
    *,
    auditor: Auditor,
    subscribe: Callable[[Callable[[object], Awaitable[None]]], Awaitable[object]],
    publish: Callable[[str, bytes], Awaitable[None]],
    concurrency: int,
    stop: asyncio.Event,
) -> None:
    """Handle requests concurrently (bounded) until ``stop``; every task awaited on exit."""
    slots = asyncio.Semaphore(concurrency)

    async with asyncio.TaskGroup() as tasks:

        async def one(data: bytes, reply: str, began: float) -> None:
            async with slots:
                answer = await handler.answer(data, began)
                if answer.response is not None and reply:
                    await publish(reply, answer.response)
                await auditor.record(answer.event)

        async def on_message(message: object) -> None:
            began = time.perf_counter()
            data = getattr(message, "data", b"")
            reply = getattr(message, "reply", "")
            tasks.create_task(one(data, reply, began), name="sentinel-auth-request")

        await subscribe(on_message)
        await stop.wait()
