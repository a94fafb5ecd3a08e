"""Runs a node over a link in asyncio: publish its outbox, feed it downward messages,
reconnect with backoff, honour offline/online faults and brown-outs.

The runner is the only place where simulated time (the node) meets wall time (the network):
reconnect backoff is counted in wall seconds because it waits for a real broker.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from backend.contract import encode, topic_for
from backend.retry import Backoff
from simulators.clock import ClockBridge
from simulators.errors import LinkError
from simulators.links import DeviceLink, LinkStatus, PublishResult
from simulators.node import Node
from simulators.outbox import Outgoing, PresenceChange, QueueOutbox


@dataclass(frozen=True, slots=True)
class Refusal:
    """A publish the broker refused (e.g. PUBACK 135 for another device's topic)."""

    topic: str
    reason_code: int
    at_s: float


class _LinkLost:
    __slots__ = ("link", "reason")

    def __init__(self, link: DeviceLink, reason: str) -> None:
        self.link = link
        self.reason = reason


class NodeRunner:
    """Owns one node's link. Build the node with ``out=QueueOutbox()``, then ``await run()``."""

    def __init__(
        self,
        node: Node,
        link_factory: Callable[[], DeviceLink],
        bridge: ClockBridge,
        *,
        backoff: Backoff | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(node.out, QueueOutbox):
            raise TypeError(f"{node.device_id}: a NodeRunner needs a node built with QueueOutbox")
        self.node = node
        self.outbox: QueueOutbox = node.out
        self.link_factory = link_factory
        self.bridge = bridge
        self.backoff = backoff or Backoff()
        self.status = LinkStatus.IDLE
        self.connects = 0
        self.connect_failures = 0
        self.last_error = ""
        self.published = 0
        self.refusals: list[Refusal] = []
        self.connected_event = asyncio.Event()
        self._link: DeviceLink | None = None
        self._announce = False
        self._rng = random.Random(f"backoff:{node.device_id}")
        node.external = bridge.call_soon
        node.wall_clock = wall_clock

    @property
    def link(self) -> DeviceLink | None:
        """The open link, if any."""
        return self._link

    def _wants_link(self) -> bool:
        return self.node.online and self.node.powered

    async def _connect(self) -> None:
        delays = self.backoff.delays(self._rng)
        while self._wants_link():
            self.status = LinkStatus.CONNECTING
            link = self.link_factory()
            will = encode(self.node.status_message())
            try:
                await link.connect(self.node.deliver, will=will, on_lost=self._lost_callback(link))
            except LinkError as error:
                self.connect_failures += 1
                self.last_error = str(error)
                self.status = LinkStatus.BACKOFF
                await asyncio.sleep(next(delays))
                continue
            self._link = link
            self.connects += 1
            self.status = LinkStatus.CONNECTED
            self.connected_event.set()
            if self._announce:
                # Firmware publishes its status on every MQTT (re)connect, not only at boot.
                self._announce = False
                self.bridge.call_soon(self.node.send_status)
            return

    def _lost_callback(self, link: DeviceLink) -> Callable[[str], None]:
        def lost(reason: str) -> None:
            self.last_error = reason
            self.outbox.push_control(_LinkLost(link, reason))

        return lost

    async def _drop_link(self, *, send_will: bool) -> None:
        link, self._link = self._link, None
        self.connected_event.clear()
        if link is not None:
            await link.aclose(send_will=send_will)

    async def run(self) -> None:
        """Start the node and serve it until cancelled."""
        # Through the bridge: a sleeping clock must notice the node's first events.
        self.bridge.call_soon(self.node.start)
        try:
            while True:
                if self._link is None and self._wants_link():
                    await self._connect()
                if not self._wants_link():
                    self.status = LinkStatus.OFFLINE
                item = await self.outbox.get()
                if isinstance(item, PresenceChange):
                    if not item.online:
                        # Offline/brown-out looks like a dead radio: the broker sends the will.
                        await self._drop_link(send_will=True)
                elif isinstance(item, _LinkLost):
                    # A loss reported by a link we already replaced is old news.
                    if item.link is self._link:
                        await self._drop_link(send_will=False)
                        self.status = LinkStatus.BACKOFF
                        self._announce = True
                elif isinstance(item, Outgoing):
                    await self._send(item)
        finally:
            self.status = LinkStatus.CLOSED
            await self._drop_link(send_will=False)

    async def _send(self, item: Outgoing) -> None:
        if self._link is None:
            if self._wants_link() and item.qos > 0:
                self.outbox.push_front(item)
            return
        try:
            own = item.kind is not None and item.topic == topic_for(item.kind, self.node.device_id)
            result: PublishResult = await self._link.publish(
                item.kind, item.payload, item.qos, topic=None if own else item.topic
            )
        except LinkError as error:
            self.last_error = str(error)
            if item.qos > 0:
                self.outbox.push_front(item)
            await self._drop_link(send_will=False)
            self._announce = True
            return
        self.published += 1
        if not result.accepted:
            self.refusals.append(Refusal(item.topic, result.reason_code, item.at_s))
            self.node.publish_refused.append((item.topic, result.reason_code))
