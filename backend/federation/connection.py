"""The site's NATS session: connect with retries, keep JetStream set up, say when ready.

:class:`MeshConnection` owns the one NATS client of the federation. :meth:`~MeshConnection.run`
connects (retrying while NATS is down: the backend starts without it), subscribes the
health listener for the whole life of the connection, creates the ``AURORA`` stream and
redoes that setup after every reconnect (the server may have restarted with its store).
The other parts wait on :attr:`~MeshConnection.ready` and read
:attr:`~MeshConnection.generation` to notice a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import nats
import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from backend.federation.errors import FederationError
from backend.federation.gossip import echo_subject
from backend.federation.jetstream import ensure_stream, local_domain, origin_stream_config
from backend.federation.messages import HEALTH_SUBJECT_WILDCARD
from backend.retry import Backoff

log = logging.getLogger(__name__)

#: Retry policy of every federation loop (connect, setup, publish, consume).
RETRY = Backoff(initial_s=0.1, max_s=2.0, jitter=0.0)

#: What a NATS round trip may raise; every loop retries on these.
NATS_ERRORS: tuple[type[BaseException], ...] = (
    nats.errors.Error,
    OSError,
    TimeoutError,
    FederationError,
)


class MeshConnection:
    """One site's NATS connection and JetStream context, reconnected and re-set-up."""

    def __init__(
        self,
        url: str | None,
        site_id: str,
        on_health: Callable[[Msg], Awaitable[None]],
        on_ready: Callable[[int], None],
    ) -> None:
        """``on_health`` receives every heartbeat; ``on_ready(generation)`` runs each time
        JetStream is (again) set up, generation 1 being the first time."""
        self.url = url
        self.site_id = site_id
        self._on_health = on_health
        self._on_ready = on_ready
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        #: JetStream domain of this site's server, once known.
        self.domain: str | None = None
        #: Set while connected with the AURORA stream in place.
        self.ready = asyncio.Event()
        #: Bumped at every (re)connect so consumers re-check their stream and consumer.
        self.generation = 0
        self._setup_needed = asyncio.Event()
        self.last_error: str | None = None

    @property
    def connected(self) -> bool:
        """True while the NATS connection is up."""
        return self._nc is not None and self._nc.is_connected

    @property
    def js(self) -> JetStreamContext:
        """The JetStream context; only valid once :attr:`ready` was set."""
        if self._js is None:
            raise FederationError("JetStream used before the NATS connection was made")
        return self._js

    @property
    def safe_url(self) -> str | None:
        """The NATS URL as safe to show (credentials removed)."""
        return without_credentials(self.url)

    async def publish_core(self, subject: str, data: bytes) -> bool:
        """Fire-and-forget publish (gossip); False when not connected or it failed."""
        nc = self._nc
        if nc is None or not nc.is_connected:
            return False
        try:
            await nc.publish(subject, data)
        except NATS_ERRORS as error:
            log.debug("core publish on %s not sent: %r", subject, error)
            return False
        return True

    async def request(self, subject: str, data: bytes, timeout_s: float) -> bytes | None:
        """One request/reply round trip (the echo probe); None when not connected, nobody
        answered or the answer took longer than ``timeout_s``."""
        nc = self._nc
        if nc is None or not nc.is_connected:
            return None
        try:
            reply = await nc.request(subject, data, timeout=timeout_s)
        except NATS_ERRORS as error:
            log.debug("request on %s unanswered: %r", subject, error)
            return None
        return reply.data

    async def run(self) -> None:
        """Connect (retrying), then keep JetStream set up; runs until cancelled."""
        if not self.url:
            self.last_error = "AURORA_NATS_URL is not set; federation cannot connect"
            log.error(self.last_error)
            return
        if self._nc is not None:  # restarted by the supervisor: only the setup part again
            self._setup_needed.set()
        delays = RETRY.delays()
        while self._nc is None:
            try:
                nc = await self._connect(self.url)
            except NATS_ERRORS as error:
                self.last_error = f"cannot connect to NATS at {self.url}: {error!r}"
                log.warning("%s (retrying)", self.last_error)
                await asyncio.sleep(next(delays))
                continue
            self._nc = nc
            self._js = nc.jetstream()
            self._setup_needed.set()
        while True:
            await self._setup_needed.wait()
            self._setup_needed.clear()
            try:
                self.domain = await local_domain(self.js)
                await ensure_stream(self.js, origin_stream_config())
            except NATS_ERRORS as error:
                self.ready.clear()
                self.last_error = f"JetStream setup failed: {error}"
                log.warning("%s (retrying)", self.last_error)
                await asyncio.sleep(RETRY.max_s)
                self._setup_needed.set()
                continue
            self.last_error = None
            self.generation += 1
            self.ready.set()
            log.info("federation: JetStream ready (domain %s)", self.domain)
            self._on_ready(self.generation)

    async def _connect(self, url: str) -> NatsClient:
        nc = await nats.connect(
            url,
            name=f"aurora-backend-{self.site_id}",
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            connect_timeout=2,
            error_cb=self._on_nats_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        try:
            # Subscribed before the client is published to the other tasks: the
            # subscription then exists for the whole life of the connection (nats-py
            # re-subscribes it after every reconnect).
            await nc.subscribe(HEALTH_SUBJECT_WILDCARD, cb=self._on_health)
            # Peers time their round trip to us with this (the link latency, by echo).
            await nc.subscribe(echo_subject(self.site_id), cb=_answer_echo)
        except BaseException:
            with contextlib.suppress(*NATS_ERRORS):
                await nc.close()
            raise
        return nc

    async def aclose(self) -> None:
        """Close the NATS connection; safe to call twice."""
        nc, self._nc = self._nc, None
        self.ready.clear()
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(*NATS_ERRORS):
                await nc.close()

    async def _on_nats_error(self, error: Exception) -> None:
        self.last_error = f"NATS at {self.url}: {error!r}"
        log.debug("nats error: %r", error)

    async def _on_disconnected(self) -> None:
        self.ready.clear()
        log.warning("federation: disconnected from NATS, reconnecting")

    async def _on_reconnected(self) -> None:
        log.info("federation: reconnected to NATS")
        # The server may have restarted with its store: check streams and consumers again.
        self._setup_needed.set()


async def _answer_echo(msg: Msg) -> None:
    """Send an echo probe straight back: the prober times the round trip on its clock."""
    if msg.reply:
        with contextlib.suppress(*NATS_ERRORS):
            await msg.respond(msg.data[:64])


def without_credentials(url: str | None) -> str | None:
    """The URL as safe to show: user and password (or token) removed."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))
