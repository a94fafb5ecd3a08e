"""What a board model emits and receives, with no transport knowledge (DESIGN: house style).

A model hands :class:`Outgoing` messages to an :class:`Outbox` and takes :class:`Downward`
messages (command, attestation request) from a ``simpy.Store``. A link adapter (MQTT, the
in-memory broker, a serial line) is the only thing that knows both sides.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from backend.contract import MessageKind


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message a node sends.

    ``kind`` is ``None`` only for a topic outside the contract (the C2 beacon fault); then
    ``topic`` is the only addressing information. ``at_s`` is the simulation time.
    """

    kind: MessageKind | None
    topic: str
    payload: bytes
    qos: int
    at_s: float
    device_id: str


@dataclass(frozen=True, slots=True)
class Downward:
    """One backend -> device message as it came off the wire (the node parses it itself)."""

    kind: MessageKind
    payload: bytes


class Outbox(Protocol):
    """Where a model puts what it sends; ``presence`` says the radio went off/on."""

    def put(self, message: Outgoing) -> None:
        """Queue ``message`` for the link (never blocks: called inside a simpy step)."""

    def presence(self, online: bool) -> None:
        """The node's network went away (``False``) or came back (``True``)."""


class RecordingOutbox:
    """An outbox that keeps everything: for tests, battery projections and payload mining."""

    def __init__(self) -> None:
        self.messages: list[Outgoing] = []
        self.presence_changes: list[bool] = []

    def put(self, message: Outgoing) -> None:
        """Record ``message``."""
        self.messages.append(message)

    def presence(self, online: bool) -> None:
        """Record a presence change."""
        self.presence_changes.append(online)

    def of_kind(self, kind: MessageKind) -> list[Outgoing]:
        """The recorded messages of ``kind``, in order."""
        return [m for m in self.messages if m.kind is kind]


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """Control item in a :class:`QueueOutbox`: the node went offline or online."""

    online: bool


class QueueOutbox:
    """An outbox feeding an asyncio queue, drained by a link runner.

    Bounded like a device's transmit buffer: when full, the oldest message is dropped
    (a real node overwrites its ring buffer) and counted in ``dropped``.
    """

    def __init__(self, max_messages: int = 256) -> None:
        self._items: deque[object] = deque()
        self._max = max_messages
        self._ready = asyncio.Event()
        self.dropped = 0

    def put(self, message: Outgoing) -> None:
        """Queue ``message``; drops the oldest one when the buffer is full."""
        if len(self._items) >= self._max:
            for index, old in enumerate(self._items):
                if isinstance(old, Outgoing):
                    del self._items[index]
                    self.dropped += 1
                    break
        self._items.append(message)
        self._ready.set()

    def presence(self, online: bool) -> None:
        """Queue a presence change for the runner."""
        self._items.append(PresenceChange(online))
        self._ready.set()

    def push_control(self, item: object) -> None:
        """Queue a runner-private control item (e.g. "link lost") behind the messages."""
        self._items.append(item)
        self._ready.set()

    async def get(self) -> object:
        """The next item (:class:`Outgoing`, :class:`PresenceChange` or a control item)."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    def push_front(self, item: Outgoing) -> None:
        """Put back a message that could not be sent (it goes out first after reconnect)."""
        self._items.appendleft(item)
        self._ready.set()

    def __len__(self) -> int:
        return len(self._items)
