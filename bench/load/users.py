"""Locust users that behave like the contract's devices, and the per-process load run.

Each user is one device: its own TLS connection with its own client certificate from the
bench PKI (CN = device id = MQTT client id, fixed and reproducible), MQTT v5, ``status``
first, then the board's periodic traffic with locust task weights. Every publish carries the
``aurora-trace`` user property (:mod:`bench.load.trace`) and is reported to locust in up to
three stages (see :mod:`bench.load.summary`): broker acknowledgement (``MQTT``), the entry
the backend wrote to a Redis stream (``INGEST``), and for doors the ``unlock`` command that
answers a granted badge (``UNLOCK``). What was never ingested is reported as ``LOST``.

Scale: paho's own network loop uses ``select()``, which stops at ~330 TLS sockets per
process, silently (DESIGN.md, facts); ``locust.contrib.mqtt``'s ``use_loop_selectors`` lifts
the limit but still runs a thread (greenlet) per client building a new selector every
iteration, and starved a worker at ~700 devices here. :class:`GeventPump` instead drives
every client from gevent's event loop through paho's external-loop socket callbacks.

This module is imported by the locustfile (``bench/load/locustfile.py``); everything runs
inside locust's gevent world, so blocking calls (redis-py, paho) are cooperative.
"""

from __future__ import annotations

import ssl
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import gevent
import paho.mqtt.client as mqtt
import redis
from gevent.event import Event
from locust import User, constant_throughput, events, task
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from backend.bus import AUDIT_STREAM, TELEMETRY_STREAM
from backend.contract import CommandMessage, CommandVerb, MessageKind, decode_payload, topic_for
from bench.benchfile import read_bench_file
from bench.load.clients import client_tls_context, no_delay
from bench.load.ledger import Ledger
from bench.load.profiles import PROFILES, BoardProfile, DeviceTraffic, parse_board_mix
from bench.load.summary import CONNECTION_EVENTS, LoadCounters, summarize
from bench.load.trace import TRACE_FIELD, TRACE_PROPERTY, TraceError, decode_trace
from bench.pki import Pki

#: Where the backend writes what it ingested, per message kind: (stream, entry types).
#: One message may land in several streams (a reading goes to telemetry *and* audit); only
#: the listed (stream, type) counts, so a second copy is never mistaken for a duplicate.
INGEST_STREAMS: dict[str, tuple[str, frozenset[str]]] = {
    MessageKind.TELEMETRY.value: (TELEMETRY_STREAM, frozenset({"telemetry"})),
    MessageKind.STATUS.value: (AUDIT_STREAM, frozenset({"status", "device_status"})),
    MessageKind.BADGE_EVENT.value: (AUDIT_STREAM, frozenset({"badge_read", "badge_event"})),
}
CONNECT_TIMEOUT_S = 15.0
PROGRESS_INTERVAL_S = 2.0


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """The ``--aurora-*`` options of the locustfile, read once per process."""

    state_dir: Path
    site: str
    device_rate: float
    qos0_share: float
    messages: int
    publish_s: float
    drain_s: float
    boards: dict[str, int]
    id_prefix: str
    summary: Path | None
    mqtt_host: str | None
    mqtt_port: int | None
    redis_url: str | None
    unlock_timeout_s: float

    @classmethod
    def from_parsed(cls, parsed: Any) -> LoadOptions:
        """From locust's parsed options (``environment.parsed_options``)."""
        return cls(
            state_dir=Path(parsed.aurora_state_dir),
            site=parsed.aurora_site,
            device_rate=float(parsed.aurora_device_rate),
            qos0_share=float(parsed.aurora_qos0_share),
            messages=int(parsed.aurora_messages),
            publish_s=float(parsed.aurora_publish_s),
            drain_s=float(parsed.aurora_drain_s),
            boards=parse_board_mix(parsed.aurora_boards),
            id_prefix=parsed.aurora_id_prefix,
            summary=Path(parsed.aurora_summary) if parsed.aurora_summary else None,
            mqtt_host=parsed.aurora_mqtt_host or None,
            mqtt_port=int(parsed.aurora_mqtt_port) if parsed.aurora_mqtt_port else None,
            redis_url=parsed.aurora_redis_url or None,
            unlock_timeout_s=float(parsed.aurora_unlock_timeout_s),
        )


def _add_options(parser: Any) -> None:
    group = parser.add_argument_group("aurora-bench load")
    group.add_argument("--aurora-state-dir", default=".bench", help="bench state directory")
    group.add_argument("--aurora-site", default="a", help="site id to load")
    group.add_argument("--aurora-device-rate", default="1", help="messages/s per device")
    group.add_argument(
        "--aurora-qos0-share", default="0", help="share of telemetry sent at QoS 0 (0..1)"
    )
    group.add_argument("--aurora-messages", default="0", help="messages per device (0: no cap)")
    group.add_argument("--aurora-publish-s", default="60", help="publishing time per device")
    group.add_argument("--aurora-drain-s", default="5", help="wait this long for stragglers")
    group.add_argument(
        "--aurora-boards", default="esp32s3=5,nrf52840=3,stm32f401=2", help="board mix"
    )
    group.add_argument("--aurora-id-prefix", default="load", help="device id prefix")
    group.add_argument("--aurora-summary", default="", help="write the run summary JSON here")
    group.add_argument("--aurora-mqtt-host", default="", help="override the broker host")
    group.add_argument("--aurora-mqtt-port", default="", help="override the broker port")
    group.add_argument("--aurora-redis-url", default="", help="override the site's Redis URL")
    group.add_argument("--aurora-unlock-timeout-s", default="5", help="badge -> unlock limit")


class GeventPump:
    """Drives every paho client of a locust process from gevent's own event loop.

    paho supports external loops through its socket callbacks: on socket open we start a
    libev read watcher that calls ``loop_read``; "register write" starts a write watcher that
    calls ``loop_write`` until paho says "unregister"; one greenlet calls ``loop_misc`` (keep
    alive) for all clients each second. No thread, no ``select()`` and no selector built per
    iteration, and one file descriptor per device (paho's wake-up socket pair exists only
    with its own loop) — which is what lets one process hold thousands of TLS devices.
    """

    def __init__(self) -> None:
        self._loop: Any = gevent.get_hub().loop
        self._readers: dict[mqtt.Client, Any] = {}
        self._writers: dict[mqtt.Client, Any] = {}
        self._misc = gevent.spawn(self._keepalive)

    def attach(self, client: mqtt.Client) -> None:
        """Install the socket callbacks on ``client`` (before ``connect``)."""
        client.on_socket_open = self._opened
        client.on_socket_close = self._closed
        client.on_socket_register_write = self._want_write
        client.on_socket_unregister_write = self._wrote_all

    def _opened(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        no_delay(client, userdata, sock)
        watcher = self._loop.io(sock.fileno(), 1)
        watcher.start(self._readable, client, sock)
        self._readers[client] = watcher

    def _closed(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        for watchers in (self._readers, self._writers):
            watcher = watchers.pop(client, None)
            if watcher is not None:
                watcher.stop()

    def _want_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if client in self._writers:
            return
        watcher = self._loop.io(sock.fileno(), 2)
        watcher.start(client.loop_write)
        self._writers[client] = watcher

    def _wrote_all(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        watcher = self._writers.pop(client, None)
        if watcher is not None:
            watcher.stop()

    @staticmethod
    def _readable(client: mqtt.Client, sock: Any) -> None:
        client.loop_read()
        # TLS may hold whole records already decrypted: the fd will not signal them again.
        while client.socket() is sock and getattr(sock, "pending", lambda: 0)() > 0:
            client.loop_read()

    def _keepalive(self) -> None:
        while True:
            gevent.sleep(1.0)
            for client in list(self._readers):
                client.loop_misc()

    def close(self) -> None:
        """Stop every watcher and the keep-alive greenlet (idempotent)."""
        self._misc.kill(block=False)
        for watchers in (self._readers, self._writers):
            for watcher in watchers.values():
                watcher.stop()
            watchers.clear()


class LoadRun:
    """Everything one locust process shares between its device users.

    Holds the ledger, the PKI, the broker endpoint and the ingest watcher (a greenlet
    reading the site's Redis streams). In a distributed run each worker has its own and
    watches only its own devices' traces, so send and receive times share one clock.
    """

    def __init__(self, environment: Environment, options: LoadOptions) -> None:
        self.environment = environment
        self.options = options
        info = read_bench_file(options.state_dir)
        site = info.site(options.site)
        self.mqtt_host = options.mqtt_host or site.mqtt.host
        self.mqtt_port = options.mqtt_port or site.mqtt.port
        self.redis_url = options.redis_url or site.redis
        self.ca = options.state_dir / "pki" / "ca.crt"
        self.pki = Pki.ensure(options.state_dir / "pki")
        self.ledger = Ledger(run_started_ns=time.time_ns())
        self.connected = 0
        self.connect_failures = 0
        self.drained = 0
        self._next_index: dict[str, int] = {}
        self._redis = redis.Redis.from_url(self.redis_url, decode_responses=True)
        # Read positions fixed *before* any device publishes, so no entry slips between.
        self._positions = {stream: self._last_id(stream) for stream in self._streams()}
        self._watcher = gevent.spawn(self._watch)
        self.pump = GeventPump()

    @staticmethod
    def _streams() -> list[str]:
        return sorted({stream for stream, _ in INGEST_STREAMS.values()})

    def _last_id(self, stream: str) -> str:
        newest = self._redis.xrevrange(stream, count=1)
        return str(newest[0][0]) if newest else "0-0"

    def device_id(self, board: str) -> str:
        """The next fixed, reproducible device id of ``board`` in this process."""
        index = self._next_index.get(board, 0)
        self._next_index[board] = index + 1
        runner = self.environment.runner
        worker = runner.worker_index if isinstance(runner, WorkerRunner) else 0
        return f"{self.options.id_prefix}-{board}-{max(worker, 0):02d}{index:05d}"

    def counters(self) -> LoadCounters:
        """This process's totals, sent to the master with every stats report."""
        counts = self.ledger.counts
        return LoadCounters(
            devices=self.connected + self.connect_failures,
            connected=self.connected,
            connect_failures=self.connect_failures,
            sent=counts.sent,
            ingested=counts.ingested,
            lost=counts.lost,
            pending=self.ledger.pending(),
            duplicates=counts.duplicates,
            late=counts.late,
            drained=self.drained,
        )

    def _watch(self) -> None:
        fire: Any = self.environment.events.request.fire
        accepted = {
            (stream, entry_type): kind
            for kind, (stream, types) in INGEST_STREAMS.items()
            for entry_type in types
        }
        while True:
            try:
                batches: Any = self._redis.xread(
                    dict(self._positions),  # type: ignore[arg-type]
                    count=2000,
                    block=500,
                )
            except redis.RedisError as error:
                print(f"aurora-load: reading Redis failed: {error}; retrying", file=sys.stderr)
                gevent.sleep(1.0)
                continue
            received_ns = time.time_ns()
            for stream, entries in batches or []:
                for entry_id, fields in entries:
                    self._positions[stream] = entry_id
                    raw = fields.get(TRACE_FIELD)
                    if raw is None or (stream, fields.get("type", "")) not in accepted:
                        continue
                    try:
                        trace = decode_trace(raw)
                    except TraceError:
                        continue
                    if not self.ledger.knows(trace.client):
                        continue
                    delivery = self.ledger.ingested(trace, received_ns)
                    if delivery is not None:
                        fire(
                            request_type="INGEST",
                            name=delivery.kind,
                            response_time=delivery.latency_ms,
                            response_length=0,
                            exception=None,
                            context={},
                        )

    def close(self) -> None:
        """Stop the watcher (idempotent)."""
        # Kill (and wait for) the watcher before closing its connection under it.
        self._watcher.kill(block=True, timeout=2.0)
        self.pump.close()
        self._redis.close()


def load_run(environment: Environment) -> LoadRun:
    """The process's :class:`LoadRun`, made on first use (options are final by then)."""
    run: LoadRun | None = getattr(environment, "aurora_load_run", None)
    if run is None:
        run = LoadRun(environment, LoadOptions.from_parsed(environment.parsed_options))
        environment.aurora_load_run = run  # type: ignore[attr-defined]
    return run


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
        self.client = self._make_client()

    def wait_time(self) -> float:
        """Constant throughput at ``--aurora-device-rate`` messages per second."""
        return float(constant_throughput(self.load.options.device_rate)(self))

    # -- connection --------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.device_id, protocol=mqtt.MQTTv5
        )
        pair = self.load.pki.device(self.device_id)
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
        started = time.perf_counter()
        refused: BaseException | None = None
        try:
            # TCP + TLS handshake here (cooperative under gevent); CONNACK via the pump.
            self.client.connect(self.load.mqtt_host, self.load.mqtt_port, keepalive=60)
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
        self.environment.events.request.fire(
            request_type="MQTT",
            name="connect",
            response_time=elapsed_ms,
            response_length=0,
            exception=error,
            context={"client_id": self.device_id},
        )
        if not ok:
            self.load.connect_failures += 1
            self.client.disconnect()
            raise StopUser
        self.load.connected += 1
        self.load.ledger.register(self.device_id)
        if self.profile.badge_weight:
            self.client.subscribe(topic_for(MessageKind.COMMAND, self.device_id), qos=1)
        self.publish_until = time.monotonic() + self.load.options.publish_s
        self._send(*self.traffic.status(), qos=1)

    def on_stop(self) -> None:
        """Disconnect cleanly (idempotent)."""
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
            self.environment.events.request.fire(
                request_type="MQTT",
                name="disconnect",
                response_time=0,
                response_length=0,
                exception=ConnectionError(f"broker closed the connection: {reason}"),
                context={"client_id": self.device_id},
            )

    # -- publishing ----------------------------------------------------------------------------

    def _send(self, kind: MessageKind, topic: str, payload: bytes, qos: int) -> None:
        trace = self.load.ledger.next_trace(self.device_id, time.time_ns())
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.UserProperty = [(TRACE_PROPERTY, trace.encode())]
        started = time.perf_counter()
        info = self.client.publish(topic, payload, qos=qos, properties=properties)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self._fire_publish(kind.value, 0.0, 0, RuntimeError(mqtt.error_string(info.rc)))
            return
        self.load.ledger.sent(trace, kind.value)
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
        self.environment.events.request.fire(
            request_type="MQTT",
            name=kind,
            response_time=elapsed_ms,
            response_length=size,
            exception=error,
            context={"client_id": self.device_id},
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
        fire: Any = self.environment.events.request.fire
        for loss in ledger.close(self.device_id):
            fire(
                request_type="LOST",
                name=loss.kind,
                response_time=None,
                response_length=0,
                exception=LostMessage(
                    f"not ingested within {self.load.options.drain_s:g} s after the run"
                ),
                context={"client_id": loss.client, "seq": loss.seq},
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
        self.environment.events.request.fire(
            request_type="UNLOCK",
            name="unlock",
            response_time=elapsed_ms,
            response_length=len(message.payload),
            exception=None,
            context={"client_id": self.device_id},
        )

    def _unlock_missed(self) -> None:
        self._badge_sent_at = None
        self.environment.events.request.fire(
            request_type="UNLOCK",
            name="unlock",
            response_time=None,
            response_length=0,
            exception=TimeoutError(
                f"no unlock within {self.load.options.unlock_timeout_s:g} s of a granted badge"
            ),
            context={"client_id": self.device_id},
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

# `task` is imported for users who extend these classes in their own locustfiles.
__all__ = ["USER_CLASSES", "DeviceUser", "LoadOptions", "LoadRun", "task"]


# -- run-level hooks -------------------------------------------------------------------------


@dataclass
class _MasterState:
    started: float = 0.0
    worker_counters: dict[str, LoadCounters] | None = None
    progress: gevent.Greenlet | None = None


def _on_init(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is None:
        return
    mix = parse_board_mix(options.aurora_boards)
    for board, user_class in USER_CLASSES.items():
        # Locust spreads users over classes by weight; weight 0 means none of that board.
        user_class.weight = mix.get(board, 0)
    state = _MasterState(worker_counters={})
    environment.aurora_master = state  # type: ignore[attr-defined]
    if isinstance(environment.runner, WorkerRunner):

        def report(client_id: str, data: dict[str, Any]) -> None:
            run: LoadRun | None = getattr(environment, "aurora_load_run", None)
            if run is not None:
                data["aurora"] = run.counters().model_dump()

        environment.events.report_to_master.add_listener(report)  # type: ignore[no-untyped-call]
    if isinstance(environment.runner, MasterRunner):

        def collect(client_id: str, data: dict[str, Any]) -> None:
            if "aurora" in data and state.worker_counters is not None:
                state.worker_counters[client_id] = LoadCounters(**data["aurora"])

        environment.events.worker_report.add_listener(collect)  # type: ignore[no-untyped-call]


def _counters(environment: Environment) -> LoadCounters:
    state: _MasterState = environment.aurora_master  # type: ignore[attr-defined]
    if isinstance(environment.runner, MasterRunner):
        total = LoadCounters()
        for counters in (state.worker_counters or {}).values():
            total = total.plus(counters)
        return total
    run: LoadRun | None = getattr(environment, "aurora_load_run", None)
    return run.counters() if run is not None else LoadCounters()


def _stage_totals(environment: Environment) -> dict[str, int]:
    totals: dict[str, int] = {}
    assert environment.runner is not None
    for (name, method), entry in environment.runner.stats.entries.items():
        if name in CONNECTION_EVENTS:
            continue
        totals[method] = totals.get(method, 0) + entry.num_requests
    return totals


def _progress(environment: Environment) -> None:
    """Print progress; end the run once every device published and drained.

    ``--run-time`` is only the safety net: device connections can take longer than the
    planned ramp, and the run should neither cut devices short nor idle after they are done.
    """
    state: _MasterState = environment.aurora_master  # type: ignore[attr-defined]
    target = int(getattr(environment.parsed_options, "num_users", 0) or 0)
    while True:
        gevent.sleep(PROGRESS_INTERVAL_S)
        assert environment.runner is not None
        counters = _counters(environment)
        if target and counters.drained + counters.connect_failures >= target:
            print("all devices done", flush=True)
            if getattr(environment.parsed_options, "headless", False):
                environment.runner.quit()
            else:
                environment.runner.stop()  # web UI: stop the run, keep the UI
            return
        totals = _stage_totals(environment)
        elapsed = time.monotonic() - state.started
        print(
            f"[{elapsed:5.0f} s] users {environment.runner.user_count}"
            f"  connected {counters.connected}  sent {totals.get('MQTT', 0)}"
            f"  ingested {totals.get('INGEST', 0)}  lost {totals.get('LOST', 0)}"
            f"  unlocks {totals.get('UNLOCK', 0)}",
            flush=True,
        )


def _on_test_start(environment: Environment, **_: Any) -> None:
    # A new run (web UI: another "start") gets a fresh ledger and the same device ids.
    previous: LoadRun | None = getattr(environment, "aurora_load_run", None)
    if previous is not None:
        previous.close()
        environment.aurora_load_run = None  # type: ignore[attr-defined]
    if isinstance(environment.runner, WorkerRunner):
        return
    state: _MasterState = environment.aurora_master  # type: ignore[attr-defined]
    state.started = time.monotonic()
    state.worker_counters = {}
    if state.progress is not None:
        state.progress.kill(block=False)
    state.progress = gevent.spawn(_progress, environment)


def _on_quitting(environment: Environment, **_: Any) -> None:
    run: LoadRun | None = getattr(environment, "aurora_load_run", None)
    if run is not None:
        run.close()
    options = environment.parsed_options
    if options is None or isinstance(environment.runner, WorkerRunner):
        return
    if not options.aurora_summary:
        return
    assert environment.runner is not None
    entries = [entry.serialize() for entry in environment.runner.stats.entries.values()]
    published = [
        entry
        for entry in entries
        if entry["method"] == "MQTT" and entry["name"] not in CONNECTION_EVENTS
    ]
    starts = [float(entry["start_time"]) for entry in published if entry["num_requests"]]
    ends = [
        float(entry["last_request_timestamp"])
        for entry in published
        if entry["last_request_timestamp"]
    ]
    duration_s = (max(ends) - min(starts)) if starts and ends else float(options.aurora_publish_s)
    summary = summarize(entries, _counters(environment), max(duration_s, 1e-3))
    path = Path(options.aurora_summary)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(summary.model_dump_json(indent=2) + "\n")


# Registered by call, not decorator: locust's EventHook is untyped.
events.init_command_line_parser.add_listener(_add_options)  # type: ignore[no-untyped-call]
events.init.add_listener(_on_init)  # type: ignore[no-untyped-call]
events.test_start.add_listener(_on_test_start)  # type: ignore[no-untyped-call]
events.quitting.add_listener(_on_quitting)  # type: ignore[no-untyped-call]
