"""``MqttClient``: one MQTT v5 connection on an asyncio TCP transport (TLS over memory BIOs
or the event loop's SSL transport, see ``ConnectOptions.tls_over_bio``).

The transport owns the socket from connect to close, so a broker that goes away ends in
``connection_lost`` and nothing else: no file descriptor is left registered with the event
loop after it was closed (issue 11.8: uvloop's ``add_writer`` KeyError / "Bad file
descriptor" came from a client closing its socket under the loop's feet).

What the ingest and the device links need, public:

* **manual acknowledgement** — with ``manual_ack=True`` a received QoS 1 message is PUBACKed
  only when the caller passes it to :meth:`ack` (after it was durably handled);
* **buffered reads** — :meth:`receive` returns every message already read, up to a limit,
  in one call, so a consumer works in batches instead of paying a wakeup per message;
* **PUBACK reason codes** — :meth:`publish` returns the broker's verdict (0 success,
  16 no matching subscribers, 135 not authorized, ...), never silently drops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Container, Iterable, Sequence
from typing import Any, cast

from backend.mqtt.codec import (
    ConnAck,
    Disconnect,
    PingReq,
    PingResp,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
    UserProperties,
    encode,
    encode_puback,
    encode_publish,
)
from backend.mqtt.connecting import (
    connect_failure,
    first_flight,
    keepalive_interval,
    receive_maximum,
    refusal,
)
from backend.mqtt.errors import (
    ConnectFailed,
    ConnectionLost,
    MqttError,
    MqttTimeout,
    ProtocolViolation,
)
from backend.mqtt.options import FAILURE, ConnectOptions
from backend.mqtt.reader import PacketReader
from backend.mqtt.tls_bio import TlsBio

log = logging.getLogger(__name__)


class MqttClient(asyncio.Protocol):
    """One MQTT v5 client connection; build it with :meth:`connect`."""

    def __init__(self, options: ConnectOptions) -> None:
        self.options = options
        self._reader = PacketReader()
        self._transport: asyncio.Transport | None = None
        # TLS over memory BIOs (backend/mqtt/tls_bio.py), unless options.tls_over_bio is off.
        self._tls: TlsBio | None = None
        self._handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._loop = asyncio.get_running_loop()
        self._connack: asyncio.Future[ConnAck] = self._loop.create_future()
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self._inbox: deque[Publish] = deque()
        self._arrived = asyncio.Event()
        self._pubacks: dict[int, asyncio.Future[int]] = {}
        self._subacks: dict[int, asyncio.Future[tuple[int, ...]]] = {}
        self._ids = itertools.cycle(range(1, 65536))
        self._inflight = asyncio.Semaphore(65535)
        self._writable = asyncio.Event()
        self._writable.set()
        self._last_heard = time.monotonic()
        # A timer, not a task per connection: a fleet holds thousands of idle links.
        self._keepalive: asyncio.TimerHandle | None = None
        self._error: MqttError | None = None
        #: CONNECT (+ SUBSCRIBE) to send once the transport (and TLS) is up.
        self._first_flight = b""
        # Set by deliver_to: received messages go there instead of the inbox.
        self._deliver: Callable[[Publish], None] | None = None
        self._on_lost: Callable[[MqttError], None] | None = None
        #: CONNACK of this connection (session present, broker limits).
        self.connack: ConnAck | None = None
        #: SUBACK reason codes of ``options.subscriptions`` (>= 0x80: refused).
        self.subscribed: tuple[int, ...] = ()

    # -- life cycle ------------------------------------------------------------------

    @classmethod
    async def connect(cls, options: ConnectOptions) -> MqttClient:
        """TCP (+TLS) connect, CONNECT (and SUBSCRIBE to ``options.subscriptions``), wait
        for a successful CONNACK (and the SUBACK: its reason codes are :attr:`subscribed`).

        Raises :class:`ConnectFailed` (with the reason code when the broker refused).
        """
        loop = asyncio.get_running_loop()
        client = cls(options)
        suback: asyncio.Future[tuple[int, ...]] | None = None
        packet_id = 0
        if options.subscriptions:
            packet_id = client._next_id(client._subacks)
            suback = loop.create_future()
            client._subacks[packet_id] = suback
        client._first_flight = first_flight(options, packet_id if suback is not None else None)
        try:
            async with asyncio.timeout(options.timeout_s):
                native = options.tls if not options.tls_over_bio else None
                await loop.create_connection(
                    lambda: client,
                    options.host,
                    options.port,
                    ssl=native,
                    server_hostname=options.host if native is not None else None,
                )
                # A failed handshake or a lost connection sets the CONNACK's exception.
                connack = await client._connack
                if connack.reason < FAILURE and suback is not None:
                    client.subscribed = await suback
        except (OSError, ssl.SSLError, TimeoutError, MqttError) as error:
            await client._abort()
            if isinstance(error, ConnectFailed):
                raise
            raise connect_failure(options, error, client._connack.done()) from None
        finally:
            client._subacks.pop(packet_id, None)
        if connack.reason >= FAILURE:
            await client._abort()
            raise refusal(options, connack)
        client.connack = connack
        maximum = receive_maximum(connack)
        if maximum is not None:
            client._inflight = asyncio.Semaphore(maximum)
        interval = keepalive_interval(connack, options)
        if interval > 0 and not client._closed.done():
            client._arm_keepalive(interval)
        return client

    @property
    def is_connected(self) -> bool:
        """True until the connection ended (either side)."""
        return not self._closed.done()

    @property
    def tls(self) -> ssl.SSLObject | None:
        """The connection's TLS object (``session``, ``session_reused``), None without TLS."""
        if self._tls is not None:
            return self._tls.ssl_object
        if self._transport is None:
            return None
        found = self._transport.get_extra_info("ssl_object")
        return found if isinstance(found, ssl.SSLObject) else None

    async def wait_closed(self) -> MqttError:
        """Wait until the connection ends; return why (never raises it)."""
        await asyncio.shield(self._closed)
        return self._error or ConnectionLost("connection closed")

    async def disconnect(self, reason: int = 0) -> None:
        """Send DISCONNECT with ``reason`` (4: the broker publishes the will) and close.

        Safe to call twice and after the connection was lost.
        """
        if self._handshake.done() and not self._handshake.exception():
            with contextlib.suppress(MqttError):
                self._write(encode(Disconnect(reason)))
        await self._abort()

    async def aclose(self) -> None:
        """Normal DISCONNECT and close; safe to call twice."""
        await self.disconnect(0)

    async def __aenter__(self) -> MqttClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def _abort(self) -> None:
        """Close the transport (writes pending bytes first) and stop the keepalive."""
        keepalive, self._keepalive = self._keepalive, None
        if keepalive is not None:
            keepalive.cancel()
        transport = self._transport
        if transport is not None:
            transport.close()
            # connection_lost runs on a later loop turn: wait for it, the socket is then
            # unregistered and closed by its owner, the transport.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.timeout_s):
                    await asyncio.shield(self._closed)
            if not self._closed.done():  # pragma: no cover - a transport that never closed
                transport.abort()

    # -- receiving -------------------------------------------------------------------

    async def receive(self, max_messages: int = 1000) -> list[Publish]:
        """Every message already read (at least one), up to ``max_messages``, in order.

        Raises :class:`ConnectionLost` once the connection ended and nothing is left.
        """
        while not self._inbox:
            if self._closed.done():
                raise self._error or ConnectionLost("connection closed")
            self._arrived.clear()
            await self._arrived.wait()
        inbox = self._inbox
        if len(inbox) <= max_messages:
            batch = list(inbox)
            inbox.clear()
            return batch
        return [inbox.popleft() for _ in range(max_messages)]

    async def messages(self) -> AsyncIterator[Publish]:
        """Received messages one by one until the connection ends (then raises)."""
        while True:
            for message in await self.receive():
                yield message

    def deliver_to(
        self,
        deliver: Callable[[Publish], None],
        on_lost: Callable[[MqttError], None] | None = None,
    ) -> None:
        """Hand every received message to ``deliver`` as it is read, instead of keeping it
        for :meth:`receive` (messages already kept go first); ``on_lost`` gets why the
        connection ended, once, after the last message.

        For the many small links of a device fleet: no reader task per connection.
        ``deliver`` runs in the protocol's callback, so it must not block or raise; QoS 1
        messages are acknowledged (unless ``manual_ack``) after it returned.
        """
        self._deliver = deliver
        self._on_lost = on_lost
        inbox = self._inbox
        while inbox:
            deliver(inbox.popleft())
        if self._closed.done() and on_lost is not None:
            # Lost already: told on the next loop turn, as a loss after this call would be
            # (the caller finishes its own bookkeeping of the connect first).
            self._on_lost = None
            self._loop.call_soon(on_lost, self._error or ConnectionLost("connection closed"))

    def ack(self, messages: Iterable[Publish]) -> None:
        """PUBACK the QoS 1 ones among ``messages``, in order, in one write.

        Raises :class:`ConnectionLost` when the connection is gone: the broker then
        redelivers them on the next connection of a persistent session.
        """
        data = b"".join(encode_puback(m.packet_id) for m in messages if m.qos == 1)
        if data:
            self._write(data)

    # -- sending ---------------------------------------------------------------------

    async def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        *,
        retain: bool = False,
        user_properties: UserProperties = (),
        timeout_s: float | None = None,
    ) -> int:
        """Publish; at QoS 1 wait for the PUBACK and return its reason code (QoS 0: 0)."""
        if qos == 0:
            await self._drain()
            self._write(
                encode_publish(Publish(topic, payload, 0, 0, False, retain, user_properties))
            )
            return 0
        if qos != 1:
            raise ProtocolViolation(f"QoS {qos} is not supported by this client (0 or 1)")
        async with asyncio.timeout(timeout_s or self.options.timeout_s):
            try:
                await self._inflight.acquire()
            except TimeoutError:
                raise MqttTimeout(f"no free in-flight slot to publish {topic}") from None
        try:
            packet_id = self._next_id(self._pubacks)
            future: asyncio.Future[int] = self._loop.create_future()
            self._pubacks[packet_id] = future
            await self._drain()
            self._write(
                encode_publish(
                    Publish(topic, payload, 1, packet_id, False, retain, user_properties)
                )
            )
            try:
                async with asyncio.timeout(timeout_s or self.options.timeout_s):
                    return await future
            except TimeoutError:
                raise MqttTimeout(f"no PUBACK for {topic}") from None
            finally:
                self._pubacks.pop(packet_id, None)
        finally:
            self._inflight.release()

    async def subscribe(
        self, filters: Sequence[tuple[str, int]], timeout_s: float | None = None
    ) -> tuple[int, ...]:
        """SUBSCRIBE to ``(filter, qos)`` pairs; the SUBACK reason codes (>= 0x80 refused)."""
        packet_id = self._next_id(self._subacks)
        future: asyncio.Future[tuple[int, ...]] = self._loop.create_future()
        self._subacks[packet_id] = future
        try:
            self._write(encode(Subscribe(packet_id, tuple(filters))))
            async with asyncio.timeout(timeout_s or self.options.timeout_s):
                return await future
        except TimeoutError:
            raise MqttTimeout(f"no SUBACK for {[f for f, _ in filters]}") from None
        finally:
            self._subacks.pop(packet_id, None)

    def _next_id(self, in_use: Container[int]) -> int:
        for packet_id in self._ids:
            if packet_id not in in_use:
                return packet_id
        raise AssertionError("unreachable")  # pragma: no cover

    def _write(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing() or self._closed.done():
            raise self._error or ConnectionLost("not connected")
        tls = self._tls
        if tls is None:
            transport.write(data)
            return
        records = tls.encrypt(data)
        if isinstance(records, MqttError):
            self._fail(records)
            raise self._error or records
        transport.write(records)

    async def _drain(self) -> None:
        if not self._writable.is_set():
            closed: asyncio.Future[Any] = asyncio.ensure_future(asyncio.shield(self._closed))
            writable: asyncio.Future[Any] = asyncio.ensure_future(self._writable.wait())
            try:
                await asyncio.wait({closed, writable}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                closed.cancel()
                writable.cancel()

    def _arm_keepalive(self, interval_s: int) -> None:
        # PINGREQ at half the keepalive; no packet for 1.5 keepalives: the broker is gone.
        self._keepalive = self._loop.call_later(interval_s / 2, self._ping, interval_s)

    def _ping(self, interval_s: int) -> None:
        self._keepalive = None
        if self._closed.done():
            return
        if time.monotonic() - self._last_heard > interval_s * 1.5:
            self._fail(ConnectionLost(f"no packet from the broker in {interval_s * 1.5:g} s"))
            return
        with contextlib.suppress(MqttError):
            self._write(encode(PingReq()))
        self._arm_keepalive(interval_s)

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Called by the event loop once TCP (and TLS) is up."""
        # uvloop's transports are not subclasses of asyncio.Transport, but behave as one.
        self._transport = cast(asyncio.Transport, transport)
        tls = self.options.tls
        if tls is None or not self.options.tls_over_bio:
            self._handshake.set_result(None)  # none, or done by the loop's SSL transport
            self._send_first_flight()
            return
        self._tls = TlsBio(tls, self.options.host, self.options.tls_session)
        self._continue_handshake()

    def _continue_handshake(self) -> None:
        assert self._tls is not None
        error = self._tls.handshake()
        if error is not None:
            self._fail(error)
            if not self._handshake.done():
                self._handshake.set_exception(self._error or error)
        elif self._tls.handshake_done and not self._handshake.done():
            self._handshake.set_result(None)
            # The Finished still waits in the BIO: the CONNECT's records join it.
            self._send_first_flight()
            return
        self._send_tls_records()

    def _send_first_flight(self) -> None:
        first, self._first_flight = self._first_flight, b""
        if not first:
            if self._tls is not None:
                self._send_tls_records()
            return
        with contextlib.suppress(MqttError):  # the failure is kept: the CONNACK waiter sees it
            self._write(first)

    def _send_tls_records(self) -> None:
        # Handshake records, and TLS 1.3 answers to post-handshake messages (key updates).
        assert self._tls is not None and self._transport is not None
        pending = self._tls.outgoing()
        if pending and not self._transport.is_closing():
            self._transport.write(pending)

    def _decrypt(self, data: bytes) -> bytes | None:
        """Plain bytes of the TLS records in ``data`` (None: the connection failed)."""
        assert self._tls is not None
        if not self._tls.handshake_done:
            self._tls.feed_handshake(data)
            self._continue_handshake()
            if not self._tls.handshake_done or self._handshake.exception():
                return b""
            data = b""
        plain = self._tls.decrypt(data)
        if isinstance(plain, MqttError):
            self._fail(plain)
            return None
        self._send_tls_records()
        return plain

    def data_received(self, data: bytes) -> None:
        """Called by the event loop with whatever bytes the socket gave."""
        self._last_heard = time.monotonic()
        if self._tls is not None:
            plain = self._decrypt(data)
            if not plain:
                return
            data = plain
        try:
            packets = self._reader.feed(data)
        except ProtocolViolation as error:
            self._fail(error)
            return
        auto_acks: list[bytes] = []
        arrived = False
        deliver = self._deliver
        for packet in packets:
            if isinstance(packet, Publish):
                if packet.qos == 2:
                    self._fail(ProtocolViolation("QoS 2 PUBLISH, never subscribed at QoS 2"))
                    return
                if deliver is not None:
                    deliver(packet)
                else:
                    self._inbox.append(packet)
                    arrived = True
                if packet.qos == 1 and not self.options.manual_ack:
                    auto_acks.append(encode_puback(packet.packet_id))
            elif isinstance(packet, PubAck):
                future = self._pubacks.get(packet.packet_id)
                if future is not None and not future.done():
                    future.set_result(packet.reason)
            elif isinstance(packet, SubAck):
                waiter = self._subacks.get(packet.packet_id)
                if waiter is not None and not waiter.done():
                    waiter.set_result(packet.reasons)
            elif isinstance(packet, ConnAck):
                if not self._connack.done():
                    self._connack.set_result(packet)
            elif isinstance(packet, Disconnect):
                self._fail(ConnectionLost(f"broker sent DISCONNECT, reason {packet.reason}"))
                return
            elif not isinstance(packet, PingResp):
                self._fail(ProtocolViolation(f"unexpected {type(packet).__name__}"))
                return
        if auto_acks:
            with contextlib.suppress(MqttError):
                self._write(b"".join(auto_acks))
        if arrived:
            self._arrived.set()

    def pause_writing(self) -> None:
        """The transport's write buffer is full: publishers wait."""
        self._writable.clear()

    def resume_writing(self) -> None:
        """The transport's write buffer drained."""
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        """Called by the event loop once the transport closed its socket."""
        if self._error is None:
            reason = f": {exc}" if exc else ""
            self._error = ConnectionLost(f"connection to the broker closed{reason}")
        error = self._error
        waiters: list[asyncio.Future[Any]] = [
            *self._pubacks.values(),
            *self._subacks.values(),
            self._connack,
            self._handshake,
        ]
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)
        if not self._connack.done():  # pragma: no cover - covered by the loop above
            self._connack.cancel()
        # Nobody may await these any more (a loss after connect): mark them retrieved.
        for future in (self._connack, self._handshake):
            if future.done() and not future.cancelled():
                future.exception()
        if not self._closed.done():
            self._closed.set_result(None)
        self._writable.set()
        self._arrived.set()
        on_lost, self._on_lost = self._on_lost, None
        if on_lost is not None:
            on_lost(error)

    def _fail(self, error: MqttError) -> None:
        """End the connection because of ``error`` (kept as the reason)."""
        if self._error is None:
            self._error = error
        if isinstance(error, ProtocolViolation):
            log.warning("closing MQTT connection of %s: %s", self.options.client_id, error)
        if self._transport is not None:
            self._transport.close()
