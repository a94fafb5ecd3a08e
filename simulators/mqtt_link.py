"""``MqttLink``: a :class:`~simulators.links.DeviceLink` over MQTT v5 with mutual TLS 1.3.

Each link is one device with its own certificate (CN = device_id) and client id, as a real
board. It speaks through the project's MQTT layer (:mod:`backend.mqtt`), which returns
PUBACK reason codes — a refused publish (135 "not authorized", the ACL at work) is reported,
not taken for success — and can DISCONNECT with reason 0x04 (*disconnect with will
message*), so going offline "with a dead radio" has the broker publish the last will.

Given a :class:`~simulators.tls_sessions.TlsSessions`, a link resumes the device's TLS 1.3
session on reconnect (the ticket of its previous connect) the way real devices do, and
``resumed`` says whether the broker took it.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

from backend.contract import ContractViolation, MessageKind, parse_topic, topic_for
from backend.mqtt import ConnectOptions, MqttClient, MqttError, Publish, Will, client_tls_context
from simulators.errors import LinkError
from simulators.links import DeliverFn, LostFn, PublishResult
from simulators.tls_sessions import TlsSessions

log = logging.getLogger(__name__)

#: MQTT v5 user property on the last will: the payload stays contract-exact (a status),
#: the property says the device is gone.
PRESENCE_PROPERTY = ("aurora-presence", "offline")

#: DISCONNECT reason asking the broker to publish the will (MQTT 5.0, 3.14.2.1).
DISCONNECT_WITH_WILL = 0x04


def device_tls_context(ca: Path | str, cert: Path | str, key: Path | str) -> ssl.SSLContext:
    """TLS 1.3 client context: trust the bench CA, present the device certificate."""
    try:
        return client_tls_context(ca, cert, key)
    except MqttError as error:
        raise LinkError(Path(cert).stem, str(error)) from None


class MqttLink:
    """One simulated device's MQTT v5 connection (mTLS, its own client id)."""

    def __init__(
        self,
        device_id: str,
        host: str,
        port: int,
        tls_context: ssl.SSLContext,
        *,
        keepalive_s: int = 60,
        timeout_s: float = 10.0,
        sessions: TlsSessions | None = None,
    ) -> None:
        self.device_id = device_id
        self.host = host
        self.port = port
        self.tls_context = tls_context
        self.keepalive_s = keepalive_s
        self.timeout_s = timeout_s
        #: Where the device keeps its TLS session between connects (None: never resumes).
        self.sessions = sessions
        #: Whether the last connect resumed a TLS session (no certificate exchange).
        self.resumed = False
        self._client: MqttClient | None = None
        self._on_lost: LostFn | None = None
        self._closing = False
        self._downward = tuple(
            (topic_for(kind, device_id), 1)
            for kind in (MessageKind.COMMAND, MessageKind.ATTESTATION_REQUEST)
        )

    @classmethod
    def from_files(
        cls,
        device_id: str,
        host: str,
        port: int,
        *,
        ca: Path,
        cert: Path,
        key: Path,
        **kwargs: Any,
    ) -> MqttLink:
        """A link from PEM paths (bench PKI: ``pki/ca.crt``, ``pki/devices/<id>.crt|.key``).

        With ``sessions=`` the device's context is built once and kept there, so each new
        link of the device can resume the session of the one before.
        """
        sessions: TlsSessions | None = kwargs.get("sessions")
        if sessions is None:
            return cls(device_id, host, port, device_tls_context(ca, cert, key), **kwargs)
        try:
            context = sessions.context(device_id)
        except KeyError:
            context = sessions.context(device_id, device_tls_context(ca, cert, key))
        return cls(device_id, host, port, context, **kwargs)

    async def connect(
        self, deliver: DeliverFn, *, will: bytes | None = None, on_lost: LostFn | None = None
    ) -> None:
        """CONNECT (clean start), register the last will, subscribe to the downward topics."""
        will_message = None
        if will is not None:
            will_message = Will(
                topic_for(MessageKind.STATUS, self.device_id),
                will,
                qos=1,
                user_properties=(PRESENCE_PROPERTY,),
            )
        sessions = self.sessions
        offered = sessions.session(self.device_id, self.tls_context) if sessions else None
        options = ConnectOptions(
            host=self.host,
            port=self.port,
            client_id=self.device_id,
            tls=self.tls_context,
            keepalive_s=self.keepalive_s,
            will=will_message,
            timeout_s=self.timeout_s,
            tls_session=offered,
            # Both downward topics in the CONNECT's flight: the SUBACK comes with the
            # CONNACK, one round trip after the TLS hello (see MqttClient.connect).
            subscriptions=self._downward,
        )
        try:
            client = await MqttClient.connect(options)
        except MqttError as error:
            raise LinkError(self.device_id, str(error)) from None
        if sessions is not None:
            self.resumed = sessions.connected(
                self.device_id, self.tls_context, client.tls, offered=offered is not None
            )
        else:
            self.resumed = bool(client.tls is not None and client.tls.session_reused)
        self._client = client
        self._on_lost = on_lost
        self._closing = False
        # Messages are handed over in the client's protocol callback: no reader task
        # per device (thousands of idle links in one process).
        client.deliver_to(
            lambda message: self._deliver(message, deliver),
            lambda error: self._lost(client, error),
        )

    def _deliver(self, message: Publish, deliver: DeliverFn) -> None:
        try:
            kind = parse_topic(message.topic).kind
        except ContractViolation:
            return
        try:
            deliver(kind, message.payload)
        except Exception:
            # A failing consumer must not take the connection down with it (this runs in
            # the transport's callback); it is a bug of the consumer, so it is logged.
            log.exception("%s: delivering a message on %s failed", self.device_id, message.topic)

    def _lost(self, client: MqttClient, error: MqttError) -> None:
        if client is self._client and not self._closing and self._on_lost is not None:
            self._on_lost(f"connection lost: {error}")

    async def publish(
        self, kind: MessageKind | None, payload: bytes, qos: int, *, topic: str | None = None
    ) -> PublishResult:
        """Publish and report the broker's verdict (135 when the ACL refused the topic)."""
        client = self._client
        if client is None:
            raise LinkError(self.device_id, "publish on a closed link")
        if topic is None:
            if kind is None:
                raise LinkError(self.device_id, "publish needs a kind or a topic")
            topic = topic_for(kind, self.device_id)
        try:
            code = await client.publish(topic, payload, qos, timeout_s=self.timeout_s)
        except MqttError as error:
            raise LinkError(self.device_id, f"publish to {topic} failed: {error}") from None
        return PublishResult(code)

    async def aclose(self, *, send_will: bool = False) -> None:
        """Disconnect. ``send_will``: DISCONNECT reason 0x04, the broker publishes the will."""
        client, self._client = self._client, None
        if client is None:
            return
        self._closing = True
        await client.disconnect(DISCONNECT_WITH_WILL if send_will else 0)
