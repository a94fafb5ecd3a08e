"""Thread-driven paho clients for measurements outside locust (``make bench``).

:class:`Publisher` sends flat out or at a paced rate and counts acknowledgements;
:class:`Subscriber` timestamps every message it receives. Both use MQTT v5 over mutual TLS
with a certificate of the bench PKI and run paho's network loop in its own thread
(``loop_start``), so the asyncio code of the measurement stays responsive. paho is used
rather than aiomqtt because it exposes PUBACK reason codes and costs less per message.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict, Unpack

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from backend.mqtt import client_tls_context as mqtt_tls_context
from bench.errors import BenchError
from bench.load.trace import TRACE_PROPERTY

CONNECT_TIMEOUT_S = 15.0


class MeasurementError(BenchError):
    """A measurement could not be taken (broker refused, nothing arrived in time)."""


def no_delay(client: Any, userdata: Any, sock: Any) -> None:
    """paho ``on_socket_open``: switch Nagle off. A latency probe must not wait ~40 ms for a
    delayed ACK before its next small packet leaves (write-write-read pattern)."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def client_tls_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """Client TLS context: trust the bench CA ``ca``, present ``cert``/``key`` (the project's
    one builder, :func:`backend.mqtt.client_tls_context`: TLS 1.3 minimum)."""
    return mqtt_tls_context(ca, cert, key)


class ClientTls(TypedDict):
    """Who a measuring client is to the broker: the bench CA, its cert and key, its id."""

    ca: Path
    cert: Path
    key: Path
    client_id: str


class _Client:
    def __init__(self, host: str, port: int, **tls: Unpack[ClientTls]) -> None:
        ca, cert, key, client_id = tls["ca"], tls["cert"], tls["key"], tls["client_id"]
        self.host, self.port, self.client_id = host, port, client_id
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.tls_set_context(client_tls_context(ca, cert, key))
        self.client.on_socket_open = no_delay
        self.client.on_connect = self._on_connect
        self._connected = threading.Event()
        self._connect_reason: Any = None

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._connect_reason = reason
        self._connected.set()

    def connect(self) -> None:
        """Connect and start the network thread; raises MeasurementError when refused."""
        self.client.connect_async(self.host, self.port, keepalive=60)
        self.client.loop_start()
        if not self._connected.wait(CONNECT_TIMEOUT_S) or self._connect_reason.is_failure:
            self.close()
            raise MeasurementError(
                f"{self.client_id} could not connect to {self.host}:{self.port}: "
                f"{self._connect_reason or 'timed out'}"
            )

    def close(self) -> None:
        """Disconnect and stop the network thread (safe to call twice)."""
        self.client.disconnect()
        self.client.loop_stop()


class Publisher(_Client):
    """Publishes and counts broker acknowledgements (PUBACK reason codes checked)."""

    def __init__(
        self, host: str, port: int, *, max_inflight: int = 1000, **tls: Unpack[ClientTls]
    ) -> None:
        super().__init__(host, port, **tls)
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(0)
        self.client.on_publish = self._on_publish
        self._lock = threading.Lock()
        self._acked = 0
        self._refused = 0
        self._all_acked = threading.Condition(self._lock)
        self.published = 0

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._all_acked:
            self._acked += 1
            if getattr(reason, "is_failure", False):
                self._refused += 1
            self._all_acked.notify_all()

    def publish(self, topic: str, payload: bytes, qos: int, trace: str | None = None) -> None:
        """Queue one message (``trace`` becomes the ``aurora-trace`` user property)."""
        properties = None
        if trace is not None:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.UserProperty = [(TRACE_PROPERTY, trace)]
        info = self.client.publish(topic, payload, qos=qos, properties=properties)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise MeasurementError(f"publish failed: {mqtt.error_string(info.rc)}")
        self.published += 1

    def paced(
        self,
        count: int,
        rate_per_s: float,
        send: Callable[[int], object],
        stop: threading.Event | None = None,
    ) -> float:
        """Call ``send(i)`` ``count`` times at ``rate_per_s``; returns the achieved rate.

        Pacing is by schedule (message i is due at ``i / rate``), so a late start is caught
        up in a burst instead of lowering the rate; ``stop`` ends it early.
        """
        started = time.perf_counter()
        for index in range(count):
            if stop is not None and stop.is_set():
                count = index
                break
            due = started + index / rate_per_s
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            send(index)
        elapsed = time.perf_counter() - started
        return count / elapsed if elapsed > 0 else 0.0

    def wait_acked(self, timeout_s: float) -> None:
        """Block until every published message was acknowledged; raise on refusals."""
        deadline = time.monotonic() + timeout_s
        with self._all_acked:
            while self._acked < self.published:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise MeasurementError(
                        f"{self.client_id}: {self.published - self._acked} of "
                        f"{self.published} publishes unacknowledged after {timeout_s:g} s"
                    )
                self._all_acked.wait(remaining)
            if self._refused:
                raise MeasurementError(f"{self.client_id}: broker refused {self._refused}")


class Subscriber(_Client):
    """Timestamps (``time.perf_counter``) every message on its subscriptions."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        on_message: Callable[[mqtt.MQTTMessage, float], None] | None = None,
        **tls: Unpack[ClientTls],
    ) -> None:
        super().__init__(host, port, **tls)
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self._handler = on_message
        self._subscribed = threading.Event()
        self._lock = threading.Condition()
        self.count = 0
        self.first_at: float | None = None
        self.last_at: float | None = None

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        self._subscribed.set()

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        now = time.perf_counter()
        with self._lock:
            self.count += 1
            if self.first_at is None:
                self.first_at = now
            self.last_at = now
            self._lock.notify_all()
        if self._handler is not None:
            self._handler(message, now)

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe and wait for the SUBACK, so nothing published after is missed."""
        self._subscribed.clear()
        self.client.subscribe(topic, qos=qos)
        if not self._subscribed.wait(CONNECT_TIMEOUT_S):
            raise MeasurementError(f"{self.client_id}: no SUBACK for {topic}")

    def wait_count(self, count: int, timeout_s: float) -> None:
        """Block until ``count`` messages arrived in total."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self.count < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise MeasurementError(
                        f"{self.client_id}: {self.count} of {count} messages after {timeout_s:g} s"
                    )
                self._lock.wait(remaining)
