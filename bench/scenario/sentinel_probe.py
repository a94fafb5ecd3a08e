"""The Sentinel's side of a scenario run: what it observes and the clients it plays.

:class:`SentinelProbe` feeds the timeline from the origin site's Redis (security events on
``aurora:sentinel:events`` as SECURITY, callout decisions on ``aurora:sentinel:auth`` as
AUTH, both from the moment the probe starts) and from the Sentinel clients it connects
(each alert received is a DELIVERY event). It also publishes through the origin as the
alert publisher and connects clients with good or bad credentials.

Names: a scenario's client ``acme`` is ``acme-<run suffix>`` on the wire (see
:mod:`bench.scenario.sentinel_steps`); events are recorded under the scenario's name, so
expectations and reports never see the suffix.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import uuid
from typing import Any

import aiomqtt
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from backend.sentinel.authdb import AuthDb
from backend.sentinel.naming import AUTH_AUDIT_STREAM, EVENTS_STREAM, alerts_topic
from bench.benchfile import SentinelInfo
from bench.errors import BenchError
from bench.scenario.timeline import EventKind, Timeline
from bench.services.sentinel_client import mqtt_client
from bench.site import RunningBench

#: How long a subscriber waits before trying the next node after losing its connection.
RECONNECT_S = 0.5
PASSWORD_BYTES = 12


class SentinelProbe:
    """Observes the Sentinel for one scenario run and plays its clients."""

    def __init__(self, bench: RunningBench, timeline: Timeline, site: str) -> None:
        info = bench.info.sentinel
        if info is None:
            raise BenchError("this scenario needs the Sentinel: put `sentinel: true` on its site")
        self.info: SentinelInfo = info
        self.bench = bench
        self.timeline = timeline
        self.site = site
        self.suffix = uuid.uuid4().hex[:6]
        self._redis = aioredis.from_url(bench.info.site(site).redis, decode_responses=True)
        self._tasks: set[asyncio.Task[None]] = set()
        self._passwords: dict[str, str] = {}
        self._publisher: aiomqtt.Client | None = None
        self.killed: set[str] = set()
        #: Scenario client name -> the region of the node it is subscribed at now.
        self.where: dict[str, str] = {}

    # -------------------------------------------------------------- names

    def wire_id(self, name: str) -> str:
        """The client id on the wire for a scenario's client name."""
        return f"{name}-{self.suffix}"[:64]

    def name_of(self, wire_id: str) -> str:
        """The scenario's name for a wire id (ids of other runs are kept as they are)."""
        return wire_id.removesuffix(f"-{self.suffix}")

    # -------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Start following both streams (from now)."""
        starts: dict[Any, Any] = {}
        for stream in (EVENTS_STREAM, AUTH_AUDIT_STREAM):
            try:
                last = await self._redis.xrevrange(stream, count=1)
            except RedisError as error:
                raise BenchError(f"cannot read {stream} at site {self.site}: {error}") from None
            starts[stream] = last[0][0] if last else "0-0"
        self._spawn(self._follow(starts))

    async def aclose(self) -> None:
        """Stop every task and client."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._publisher is not None:
            with contextlib.suppress(Exception):
                await self._publisher.__aexit__(None, None, None)
        await self._redis.aclose()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -------------------------------------------------------------- observing

    async def _follow(self, starts: dict[Any, Any]) -> None:
        while True:
            try:
                reply: Any = await self._redis.xread(starts, count=500, block=200)
            except (RedisError, OSError):
                await asyncio.sleep(0.5)
                continue
            for stream, entries in reply or ():
                for entry_id, fields in entries:
                    starts[stream] = entry_id
                    if stream == EVENTS_STREAM:
                        self._security(fields)
                    else:
                        self._auth(fields)

    def _security(self, fields: dict[str, str]) -> None:
        try:
            data = json.loads(fields.get("data", "{}"))
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        client = self.name_of(str(data.get("client_id", "")))
        text = (
            f"{data.get('stage')}/{data.get('rule')} {data.get('severity')} "
            f"x{data.get('count')}{' closed' if data.get('closed') else ''}"
        )
        self.timeline.record(
            EventKind.SECURITY, "redis", site=self.site, device=client, text=text,
            **{k: v for k, v in data.items() if k != "client_id"}, client=client,
        )  # fmt: skip

    def _auth(self, fields: dict[str, str]) -> None:
        client = self.name_of(fields.get("client_id", ""))
        result, reason = fields.get("result"), fields.get("reason")
        self.timeline.record(
            EventKind.AUTH, "redis", site=self.site, device=client, client=client,
            result=result, reason=reason, server=fields.get("server"),
            text=f"{result} ({reason})",
        )  # fmt: skip

    # -------------------------------------------------------------- acting

    async def add_client(self, name: str, region: str) -> str:
        """Create (or reset) the client in the Auth DB; returns its password."""
        password = uuid.uuid4().hex[:PASSWORD_BYTES]
        db = AuthDb.open(self.bench.info.site(self.site).database)
        try:
            await db.start()
            await db.add(self.wire_id(name), password, region)
        finally:
            await db.aclose()
        self._passwords[name] = password
        return password

    async def subscribe(self, name: str, region: str) -> None:
        """Connect as the client and keep receiving its alerts (subscribed when this returns)."""
        password = self._passwords.get(name)
        if password is None:
            raise BenchError(f"client {name} has no password yet: connect it with good credentials")
        subscribed = asyncio.Event()
        failures: list[str] = []
        self._spawn(self._receive(name, region, password, subscribed, failures))
        waiter = asyncio.ensure_future(subscribed.wait())
        try:
            await asyncio.wait_for(waiter, 20)
        except TimeoutError:
            raise BenchError(
                f"client {name} could not subscribe within 20s: {'; '.join(failures[-3:])}"
            ) from None

    async def _receive(
        self,
        name: str,
        region: str,
        password: str,
        subscribed: asyncio.Event,
        failures: list[str],
    ) -> None:
        wire = self.wire_id(name)
        order = [n for n in self.info.nodes if n.region == region]
        order += [n for n in self.info.nodes if n.region != region]
        attempt = 0
        while True:
            node = order[attempt % len(order)]
            attempt += 1
            try:
                # A persistent session under a fixed identifier: when its node dies, the
                # alerts published before it is back are replayed at QoS 1 by the next node
                # (backend.sentinel.delivery), as a real subscriber would get them.
                async with mqtt_client(
                    node.mqtt.host,
                    node.mqtt.port,
                    self.bench.info.ca,
                    wire,
                    password,
                    identifier=wire,
                    clean_session=False,
                ) as client:
                    await client.subscribe(alerts_topic(wire), qos=1)
                    self.where[name] = node.region
                    if subscribed.is_set():
                        self.timeline.record(
                            EventKind.NOTE, "sentinel", device=name,
                            text=f"{name} resubscribed at {node.region}",
                        )  # fmt: skip
                    subscribed.set()
                    async for message in client.messages:
                        body = bytes(message.payload)  # type: ignore[arg-type]
                        topic = str(message.topic).replace(wire, name)
                        self.timeline.record(
                            EventKind.DELIVERY, "sentinel", device=name, client=name,
                            topic=topic, node=node.region, size=len(body),
                            body=body[:2000].decode("utf-8", "replace"),
                            text=f"{len(body)} bytes on {topic} at {node.region}",
                        )  # fmt: skip
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failures.append(f"{node.region}: {error!r}")
                await asyncio.sleep(RECONNECT_S)

    async def moved_off(self, region: str, timeout_s: float = 45.0) -> list[str]:
        """Wait until no subscriber is at ``region`` any more; returns those that moved.

        The Sentinel delivers to MQTT subscribers at QoS 0 for now (no replay from the
        stream on resubscribe), so a step after a node kill waits for this, or what it
        publishes meanwhile is lost for the clients still reconnecting.
        """
        moved = sorted(name for name, at in self.where.items() if at == region)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while any(self.where.get(name) == region for name in moved):
            if asyncio.get_running_loop().time() > deadline:
                stuck = [name for name in moved if self.where.get(name) == region]
                raise BenchError(
                    f"client(s) {', '.join(stuck)} did not resubscribe at another node "
                    f"within {timeout_s:g}s of {region} going away"
                )
            await asyncio.sleep(0.05)
        return moved

    async def bad_connects(self, name: str, region: str, attempts: int) -> int:
        """Connect ``attempts`` times with a wrong password; returns how many were refused."""
        node = next(n for n in self.info.nodes if n.region == region)
        refused = 0
        for _ in range(attempts):
            try:
                async with mqtt_client(
                    node.mqtt.host,
                    node.mqtt.port,
                    self.bench.info.ca,
                    self.wire_id(name),
                    "wrong-" + uuid.uuid4().hex[:8],
                    timeout_s=5.0,
                ):
                    pass
            except Exception:
                refused += 1
        return refused

    async def publish(self, client: str, body: bytes) -> None:
        """Publish one alert for ``client`` through the origin as the alert publisher."""
        if self._publisher is None:
            origin = self.info.origin
            context = ssl.create_default_context(cafile=self.bench.info.ca)
            context.load_cert_chain(origin.publisher_cert, origin.publisher_key)
            publisher = aiomqtt.Client(
                origin.mqtt.host,
                origin.mqtt.port,
                tls_context=context,
                protocol=aiomqtt.ProtocolVersion.V5,
                identifier=f"scenario-publisher-{self.suffix}",
            )
            await publisher.__aenter__()
            self._publisher = publisher
        await self._publisher.publish(alerts_topic(self.wire_id(client)), body, qos=1)
