"""Locust users that behave like the contract's devices.

Each user is one device: its own TLS connection with its own client certificate from the
bench PKI (CN = device id = MQTT client id, fixed and reproducible), MQTT v5, ``status``
first, then the board's periodic traffic with locust task weights. Every publish carries the
``aurora-trace`` user property (:mod:`bench.load.trace`) and is reported in up to three
stages (see :mod:`bench.load.summary`): broker acknowledgement (``MQTT``), the entry the
backend wrote to a Redis stream (``INGEST``, by :mod:`bench.load.watcher`), and for doors
the ``unlock`` command that answers a granted badge (``UNLOCK``). What was never ingested is
reported as ``LOST``. Runs inside locust's gevent world: paho is driven by
:class:`~bench.load.pump.GeventPump`, blocking calls are cooperative.
"""

from __future__ import annotations

import ssl
import time
from typing import Any, ClassVar

import gevent
import paho.mqtt.client as mqtt
from gevent.event import Event
from locust import User, constant_throughput
from locust.env import Environment
from locust.exception import StopUser
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from backend.contract import CommandMessage, CommandVerb, MessageKind, decode_payload, topic_for
from bench.load.clients import client_tls_context
from bench.load.profiles import PROFILES, BoardProfile, DeviceTraffic
from bench.load.run import load_run
from bench.load.trace import TRACE_PROPERTY
from bench.pki import Pki

CONNECT_TIMEOUT_S = 15.0


class LostMessage(Exception):
    """A message sent but never found ingested within the drain time."""


class DeviceUser(User):
    """One simulated device; subclasses pick the board profile."""

    abstract = True
    profile: ClassVar[BoardProfile]

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.load = load_run(environment)
        self.device_id = self.load.device_id(self.profile.board_family)
        self.traffic = DeviceTraffic(self.device_id, self.profile)
        self.sent_count = 0
        self.publish_until = 0.0
        self.drained = False
        self._connected = Event()
        self._connect_rc: Any = None
        self._inflight: dict[int, tuple[str, float, int]] = {}
        self._early_acks: dict[int, tuple[float, Any]] = {}
        self._badge_sent_at: float | None = None
        self.client: mqtt.Client | None = None

    def wait_time(self) -> float:
        """Constant throughput at ``--aurora-device-rate`` messages per second."""
        return float(constant_throughput(self.load.options.device_rate)(self))

    # -- connection --------------------------------------------------------------------------

    def _make_client(self, pki: Pki) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.device_id, protocol=mqtt.MQTTv5
        )
        pair = pki.device(self.device_id)
        client.tls_set_context(client_tls_context(self.load.ca, pair.cert, pair.key))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = None
        self.load.pump.attach(client)
        return client

    def on_start(self) -> None:
        """Connect, subscribe doors to their command topic, then send ``status`` first."""
        if self.load.fatal or self.load.pki is None:
            # The process cannot measure (no bench file, no Redis): do not load the site.
            self.load.connect_failures += 1
            raise StopUser
        self.client = client = self._make_client(self.load.pki)
        started = time.perf_counter()
        refused: BaseException | None = None
        try:
            # TCP + TLS handshake here (cooperative under gevent); CONNACK via the pump.
            client.connect(self.load.mqtt_host, self.load.mqtt_port, keepalive=60)
        except (OSError, ssl.SSLError) as caught:
            refused = caught
        ok = (
            refused is None
            and self._connected.wait(CONNECT_TIMEOUT_S)
            and not self._connect_failed()
        )
        elapsed_ms = (time.perf_counter() - started) * 1000
        reason = refused or self._connect_rc or f"no CONNACK within {CONNECT_TIMEOUT_S:g} s"
        error = None if ok else ConnectionError(f"connect failed: {reason}")
        self.load.fire("MQTT", "connect", elapsed_ms, device=self.device_id, error=error)
        if not ok:
            self.load.problems.record(
                "connect",
                reason,
                f"{self.device_id} -> {self.load.mqtt_host}:"
                f"{self.load.mqtt_port}: connect failed: {reason}",
            )
            self.load.connect_failures += 1
            client.disconnect()
            raise StopUser
        self.load.connected += 1
        self.load.series.add("connected", time.time())
        self.load.ledger.register(self.device_id)
        if self.profile.badge_weight:
            client.subscribe(topic_for(MessageKind.COMMAND, self.device_id), qos=1)
        self.publish_until = time.monotonic() + self.load.options.publish_s
        self._send(*self.traffic.status(), qos=1)

    def on_stop(self) -> None:
        """Disconnect cleanly (idempotent)."""
        if self.client is not None:
            self.client.disconnect()

    def _connect_failed(self) -> bool:
        return self._connect_rc is None or bool(getattr(self._connect_rc, "is_failure", True))

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._connect_rc = reason
        self._connected.set()

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if getattr(reason, "is_failure", False):
            self.load.fire(
                "MQTT",
                "disconnect",
                0,
                device=self.device_id,
                error=ConnectionError(f"broker closed the connection: {reason}"),
                cause="disconnect",
            )

    # -- publishing ----------------------------------------------------------------------------

    def _send(self, kind: MessageKind, topic: str, payload: bytes, qos: int) -> None:
        trace = self.load.ledger.next_trace(self.device_id, time.time_ns())
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.UserProperty = [(TRACE_PROPERTY, trace.encode())]
        assert self.client is not None, "tasks run only after on_start connected"
        started = time.perf_counter()
        info = self.client.publish(topic, payload, qos=qos, properties=properties)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self._fire_publish(kind.value, 0.0, 0, RuntimeError(mqtt.error_string(info.rc)))
            return
        self.load.ledger.sent(trace, kind.value)
        self.load.series.add("sent", time.time())
        self.sent_count += 1
        early = self._early_acks.pop(info.mid, None)
        if early is None:
            self._inflight[info.mid] = (kind.value, started, len(payload))
        else:
            self._fire_publish(kind.value, (early[0] - started) * 1000, len(payload), early[1])

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        acked = time.perf_counter()
        error = None
        if getattr(reason, "is_failure", False):
            # MQTT v5 PUBACK 135 = not authorized (the ACL pins a device to its own id).
            error = PermissionError(f"broker refused the publish: {reason}")
        entry = self._inflight.pop(mid, None)
        if entry is None:
            # paho may report the ack before publish() returned the mid to us.
            self._early_acks[mid] = (acked, error)
            return
        kind, started, size = entry
        self._fire_publish(kind, (acked - started) * 1000, size, error)

    def _fire_publish(
        self, kind: str, elapsed_ms: float, size: int, error: BaseException | None
    ) -> None:
        self.load.fire(
            "MQTT", kind, elapsed_ms, device=self.device_id, size=size, error=error, cause="publish"
        )

    def _publishing(self) -> bool:
        """True while this device should still send; after that it drains once, then idles."""
        limit = self.load.options.messages
        if time.monotonic() < self.publish_until and (limit <= 0 or self.sent_count < limit):
            return True
        if not self.drained:
            self.drained = True
            self._drain()
        return False

    def _drain(self) -> None:
        """Wait for this device's messages to be ingested; report the rest as lost."""
        ledger = self.load.ledger
        deadline = time.monotonic() + self.load.options.drain_s
        while ledger.pending(self.device_id) and time.monotonic() < deadline:
            gevent.sleep(0.05)
        losses = ledger.close(self.device_id)
        if losses:
            self.load.series.add("lost", time.time(), len(losses))
        for loss in losses:
            self.load.fire(
                "LOST",
                loss.kind,
                None,
                device=loss.client,
                error=LostMessage(
                    f"not ingested within {self.load.options.drain_s:g} s after the run"
                ),
            )
        if self._badge_sent_at is not None:
            self._unlock_missed()
        self.load.drained += 1

    # -- door commands ---------------------------------------------------------------------------

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        received = time.perf_counter()
        try:
            command = decode_payload(MessageKind.COMMAND, message.payload)
        except ValueError:
            return
        if not isinstance(command, CommandMessage) or command.verb is not CommandVerb.UNLOCK:
            return
        if self._badge_sent_at is None:
            return
        elapsed_ms = (received - self._badge_sent_at) * 1000
        self._badge_sent_at = None
        self.load.fire(
            "UNLOCK", "unlock", elapsed_ms, device=self.device_id, size=len(message.payload)
        )

    def _unlock_missed(self) -> None:
        self._badge_sent_at = None
        self.load.fire(
            "UNLOCK",
            "unlock",
            None,
            device=self.device_id,
            error=TimeoutError(
                f"no unlock within {self.load.options.unlock_timeout_s:g} s of a granted badge"
            ),
        )

    # -- tasks ---------------------------------------------------------------------------------

    def send_telemetry(self) -> None:
        """One reading; QoS 0 for ``--aurora-qos0-share`` of them, else QoS 1."""
        if not self._publishing():
            return
        qos = 0 if self.traffic.draw() < self.load.options.qos0_share else 1
        self._send(*self.traffic.telemetry(), qos=qos)

    def send_status(self) -> None:
        """A heartbeat (QoS 1: DESIGN, Delivery)."""
        if self._publishing():
            self._send(*self.traffic.status(), qos=1)

    def send_badge(self) -> None:
        """A granted badge read; the door then times the ``unlock`` command."""
        if not self._publishing():
            return
        if self._badge_sent_at is not None:
            if time.perf_counter() - self._badge_sent_at < self.load.options.unlock_timeout_s:
                return  # one swipe at a time: the door is still waiting for its unlock
            self._unlock_missed()
        self._badge_sent_at = time.perf_counter()
        self._send(*self.traffic.badge(), qos=1)


def _tasks(profile: BoardProfile) -> Any:
    """Locust ``tasks`` of a board: its message kinds with the profile's weights."""
    weights = {
        DeviceUser.send_telemetry: profile.telemetry_weight,
        DeviceUser.send_badge: profile.badge_weight,
        DeviceUser.send_status: profile.status_weight,
    }
    return {task_fn: weight for task_fn, weight in weights.items() if weight > 0}


class Esp32s3User(DeviceUser):
    """ESP32-S3 environmental and presence node: mostly telemetry."""

    profile = PROFILES["esp32s3"]
    tasks = _tasks(profile)


class Nrf52840User(DeviceUser):
    """nRF52840 battery-powered sentinel: telemetry."""

    profile = PROFILES["nrf52840"]
    tasks = _tasks(profile)


class Stm32f401User(DeviceUser):
    """STM32F401 door node: badge reads answered by ``unlock``, some telemetry."""

    profile = PROFILES["stm32f401"]
    tasks = _tasks(profile)


USER_CLASSES: dict[str, type[DeviceUser]] = {
    "esp32s3": Esp32s3User,
    "nrf52840": Nrf52840User,
    "stm32f401": Stm32f401User,
}
