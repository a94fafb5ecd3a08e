"""``MqttLink``: a :class:`~simulators.links.DeviceLink` over MQTT v5 with mutual TLS 1.3.

Each link is one device with its own certificate (CN = device_id) and client id, as a real
board. Two aiomqtt gaps are closed here (DESIGN.md, verified facts): aiomqtt ignores PUBACK
reason codes, so a refused publish (135 "not authorized", the ACL at work) would look like
success — :class:`_ReasonClient` records them from paho's ``on_publish``; and aiomqtt's
exit always sends a normal DISCONNECT, so going offline "with a dead radio" sends reason
0x04 (*disconnect with will message*) for the broker to publish the last will.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode as PahoReasonCode

from backend.contract import ContractViolation, MessageKind, parse_topic, topic_for
from simulators.errors import LinkError
from simulators.links import DeliverFn, LostFn, PublishResult, ReasonCode

#: MQTT v5 user property on the last will: the payload stays contract-exact (a status),
#: the property says the device is gone.
PRESENCE_PROPERTY = ("aurora-presence", "offline")


def device_tls_context(ca: Path | str, cert: Path | str, key: Path | str) -> ssl.SSLContext:
    """TLS 1.3 client context: trust the bench CA, present the device certificate."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as error:
        raise LinkError(Path(cert).stem, f"cannot load certificate {cert}: {error}") from None
    return context


class _ReasonClient(aiomqtt.Client):
    """aiomqtt client that remembers each PUBACK's reason code by packet id."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acks: dict[int, asyncio.Future[int]] = {}
        self.early_acks: dict[int, int] = {}

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason_code: Any, properties: Any
    ) -> None:
        code = int(getattr(reason_code, "value", reason_code) or 0)
        future = self.acks.pop(mid, None)
        if future is None:
            self.early_acks[mid] = code
        elif not future.done():
            future.set_result(code)
        super()._on_publish(client, userdata, mid, reason_code, properties)

    async def publish_with_reason(
        self, topic: str, payload: bytes, qos: int, timeout_s: float
    ) -> int:
        """Publish and return the PUBACK reason code (0 for QoS 0, which has no PUBACK)."""
        info = self._client.publish(topic, payload, qos)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        if qos == 0:
            return 0
        if info.mid in self.early_acks:
            return self.early_acks.pop(info.mid)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.acks[info.mid] = future
        try:
            async with asyncio.timeout(timeout_s):
                return await future
        finally:
            self.acks.pop(info.mid, None)


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
    ) -> None:
        self.device_id = device_id
        self.host = host
        self.port = port
        self.tls_context = tls_context
        self.keepalive_s = keepalive_s
        self.timeout_s = timeout_s
        self._client: _ReasonClient | None = None
        self._reader: asyncio.Task[None] | None = None
        self._on_lost: LostFn | None = None
        self._closing = False

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
        """A link from PEM paths (bench PKI: ``pki/ca.crt``, ``pki/devices/<id>.crt|.key``)."""
        return cls(device_id, host, port, device_tls_context(ca, cert, key), **kwargs)

    async def connect(
        self, deliver: DeliverFn, *, will: bytes | None = None, on_lost: LostFn | None = None
    ) -> None:
        """CONNECT (clean start), register the last will, subscribe to the downward topics."""
        will_message = None
        if will is not None:
            properties = Properties(PacketTypes.WILLMESSAGE)  # type: ignore[no-untyped-call]
            properties.UserProperty = [PRESENCE_PROPERTY]
            will_message = aiomqtt.Will(
                topic_for(MessageKind.STATUS, self.device_id), will, qos=1, properties=properties
            )
        client = _ReasonClient(
            self.host,
            self.port,
            identifier=self.device_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_context=self.tls_context,
            keepalive=self.keepalive_s,
            timeout=self.timeout_s,
            will=will_message,
        )
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as error:
            raise LinkError(
                self.device_id, f"cannot connect to {self.host}:{self.port}: {error}"
            ) from None
        self._client = client
        self._on_lost = on_lost
        self._closing = False
        try:
            # One SUBSCRIBE for both downward topics: one round trip per connect, not two.
            await client.subscribe(
                [
                    (topic_for(kind, self.device_id), 1)
                    for kind in (MessageKind.COMMAND, MessageKind.ATTESTATION_REQUEST)
                ]
            )
        except aiomqtt.MqttError as error:
            await self.aclose()
            raise LinkError(self.device_id, f"subscribe failed: {error}") from None
        self._reader = asyncio.create_task(
            self._read(client, deliver), name=f"mqtt-link-reader:{self.device_id}"
        )

    async def _read(self, client: aiomqtt.Client, deliver: DeliverFn) -> None:
        try:
            async for message in client.messages:
                try:
                    kind = parse_topic(str(message.topic)).kind
                except ContractViolation:
                    continue
                payload = message.payload
                if isinstance(payload, bytes | bytearray):
                    deliver(kind, bytes(payload))
        except aiomqtt.MqttError as error:
            if not self._closing and self._on_lost is not None:
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
            code = await client.publish_with_reason(topic, payload, qos, self.timeout_s)
        except (aiomqtt.MqttError, TimeoutError) as error:
            raise LinkError(self.device_id, f"publish to {topic} failed: {error}") from None
        return PublishResult(ReasonCode.SUCCESS if code == 0 else code)

    async def aclose(self, *, send_will: bool = False) -> None:
        """Disconnect. ``send_will``: DISCONNECT reason 0x04, the broker publishes the will."""
        client, self._client = self._client, None
        if client is None:
            return
        self._closing = True
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if send_will:
            reason = PahoReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message")
            client._client.disconnect(reasoncode=reason)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.timeout_s):
                    await asyncio.shield(client._disconnected)
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            async with asyncio.timeout(self.timeout_s):
                await client.__aexit__(None, None, None)
