"""How a node's messages reach a broker: the :class:`DeviceLink` protocol and an in-memory
broker for tests without servers.

A link moves bytes and nothing else (httpcore style): the model decides what to send, the
link publishes it and hands downward messages (command, attestation request) to the
``deliver`` callback it was connected with. The MQTT link lives in
:mod:`simulators.mqtt_link`; a serial-line link (real boards, PTY virtual boards) implements
the same protocol in the hardware package — ``topic`` is then only used for the faults that
leave the contract, which a serial frame cannot express (it may refuse them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Protocol

from backend.contract import MessageKind, topic_for
from simulators.errors import LinkError

#: Called by a link, on its event loop, for each downward message.
DeliverFn = Callable[[MessageKind, bytes], None]
#: Called by a link when its connection is lost (with a reason a person can read).
LostFn = Callable[[str], None]


class ReasonCode(IntEnum):
    """MQTT v5 PUBACK reason codes the bench meets."""

    SUCCESS = 0
    NO_MATCHING_SUBSCRIBERS = 16
    UNSPECIFIED_ERROR = 128
    NOT_AUTHORIZED = 135
    TOPIC_NAME_INVALID = 144
    PAYLOAD_FORMAT_INVALID = 153


class LinkStatus(StrEnum):
    """Where a node's connection is (the fleet's live line counts these)."""

    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKOFF = "backoff"
    OFFLINE = "offline"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What the broker said. QoS 0 cannot be refused visibly: it reports accepted."""

    reason_code: int = ReasonCode.SUCCESS

    @property
    def accepted(self) -> bool:
        """True for a success reason code (< 128)."""
        return self.reason_code < 128


class DeviceLink(Protocol):
    """One device's connection to a site.

    * ``connect`` opens it (raises :class:`~simulators.errors.LinkError` on failure),
      registers ``will`` (a status payload) as the last will, and starts calling
      ``deliver`` for downward messages and ``on_lost`` once if the connection drops.
    * ``publish`` sends one message; ``topic`` overrides the contract topic of ``kind``
      (faults only). Raises LinkError when the connection is gone.
    * ``aclose`` ends it; ``send_will=True`` asks the broker to publish the last will
      (an ungraceful-looking exit). Safe to call twice.
    """

    device_id: str

    async def connect(
        self, deliver: DeliverFn, *, will: bytes | None = None, on_lost: LostFn | None = None
    ) -> None: ...

    async def publish(
        self, kind: MessageKind | None, payload: bytes, qos: int, *, topic: str | None = None
    ) -> PublishResult: ...

    async def aclose(self, *, send_will: bool = False) -> None: ...


# --------------------------------------------------------------------------- in memory


@dataclass(frozen=True, slots=True)
class BrokerRecord:
    """A message the in-memory broker accepted (or refused)."""

    client_id: str
    topic: str
    payload: bytes
    qos: int
    reason_code: int


def own_topics_only(client_id: str, topic: str) -> bool:
    """The bench's Mosquitto ACL: write only ``aurora/<area>/<own id>/...``."""
    parts = topic.split("/")
    return (
        len(parts) >= 4
        and parts[0] == "aurora"
        and parts[1] in ("sensors", "access", "attestation")
        and parts[2] == client_id
    )


class MemoryBroker:
    """A broker in a dict: enforces the ACL, records traffic, fires last wills.

    Tests play the backend by reading ``accepted`` and calling :meth:`send_down`.
    """

    def __init__(self, acl: Callable[[str, str], bool] = own_topics_only) -> None:
        self.acl = acl
        self.records: list[BrokerRecord] = []
        self.wills_published: list[BrokerRecord] = []
        self._clients: dict[str, MemoryLink] = {}
        self.listeners: list[Callable[[BrokerRecord], None]] = []
        self.refuse_connect: set[str] = set()

    @property
    def accepted(self) -> list[BrokerRecord]:
        """Messages that passed the ACL, in order."""
        return [r for r in self.records if r.reason_code < 128]

    def link(self, device_id: str) -> MemoryLink:
        """A new link for ``device_id``."""
        return MemoryLink(self, device_id)

    def connected(self, device_id: str) -> bool:
        """True while ``device_id`` has an open link."""
        return device_id in self._clients

    def send_down(self, device_id: str, kind: MessageKind, payload: bytes) -> bool:
        """Deliver a backend -> device message; False when the device is not connected."""
        topic_for(kind, device_id)  # validates the id
        client = self._clients.get(device_id)
        if client is None or client.deliver is None:
            return False
        client.deliver(kind, payload)
        return True

    def drop(self, device_id: str) -> None:
        """Cut a device's connection as a network failure would (its will is published)."""
        client = self._clients.pop(device_id, None)
        if client is not None:
            client.lost("connection reset by the memory broker")

    def _publish(self, client_id: str, topic: str, payload: bytes, qos: int) -> int:
        allowed = self.acl(client_id, topic)
        code = ReasonCode.SUCCESS if allowed else ReasonCode.NOT_AUTHORIZED
        record = BrokerRecord(client_id, topic, payload, qos, code)
        self.records.append(record)
        if allowed:
            for listener in self.listeners:
                listener(record)
        return code

    def _fire_will(self, client_id: str, will: bytes | None) -> None:
        if will is None:
            return
        topic = topic_for(MessageKind.STATUS, client_id)
        record = BrokerRecord(client_id, topic, will, 1, ReasonCode.SUCCESS)
        self.wills_published.append(record)
        self.records.append(record)


class MemoryLink:
    """A :class:`DeviceLink` to a :class:`MemoryBroker` (no sockets)."""

    def __init__(self, broker: MemoryBroker, device_id: str) -> None:
        self.broker = broker
        self.device_id = device_id
        self.deliver: DeliverFn | None = None
        self._will: bytes | None = None
        self._on_lost: LostFn | None = None
        self._open = False

    async def connect(
        self, deliver: DeliverFn, *, will: bytes | None = None, on_lost: LostFn | None = None
    ) -> None:
        """Register with the broker (refused when the broker was told to refuse this id)."""
        if self.device_id in self.broker.refuse_connect:
            raise LinkError(self.device_id, "connection refused by the memory broker")
        self.deliver, self._will, self._on_lost = deliver, will, on_lost
        self._open = True
        self.broker._clients[self.device_id] = self

    async def publish(
        self, kind: MessageKind | None, payload: bytes, qos: int, *, topic: str | None = None
    ) -> PublishResult:
        """Publish through the broker's ACL."""
        if not self._open:
            raise LinkError(self.device_id, "publish on a closed link")
        if topic is None:
            if kind is None:
                raise LinkError(self.device_id, "publish needs a kind or a topic")
            topic = topic_for(kind, self.device_id)
        code = self.broker._publish(self.device_id, topic, payload, qos)
        # QoS 0 has no PUBACK: a refusal is silent on the wire (DESIGN, verified facts).
        return PublishResult(code if qos > 0 else ReasonCode.SUCCESS)

    def lost(self, reason: str) -> None:
        """The broker cut us off: fire the will and tell the owner."""
        if not self._open:
            return
        self._open = False
        self.broker._fire_will(self.device_id, self._will)
        if self._on_lost is not None:
            self._on_lost(reason)

    async def aclose(self, *, send_will: bool = False) -> None:
        """Disconnect; ``send_will`` makes the broker publish the last will."""
        if not self._open:
            return
        self._open = False
        if self.broker._clients.get(self.device_id) is self:
            del self.broker._clients[self.device_id]
        if send_will:
            self.broker._fire_will(self.device_id, self._will)
