"""A reconnect storm: every device connected, the site's Mosquitto restarted, all come back.

Used by ``python -m bench.perf --only storm`` (10,000 devices) and by the integration test
(a few dozen). Each :class:`StormDevice` is a device the way firmware does it: one MQTT
v5 link with its own certificate, its TLS session kept for the next connect
(:class:`~simulators.tls_sessions.TlsSessions`), a transmit queue it empties only on a
PUBACK, and jittered exponential backoff between attempts (the project's one
:class:`~backend.retry.Backoff`), so a fleet that lost its broker together does not
reconnect in lockstep.

What "queued during the restart" means, precisely (both QoS 1, both must arrive):

* **at the broker** — one message per device, PUBACKed by Mosquitto while the backend's
  persistent session (clean start off, session expiry > 0) was offline, so it sits in that
  session's queue; Mosquitto writes it to its persistence file on SIGTERM and must restore
  it on start;
* **on the device** — one message per device produced while the broker was down, held in
  the device's transmit queue until a reconnected link gets its PUBACK.

*Lost* is either kind never received by the backend's session afterwards; duplicates are
counted apart (QoS 1 allows them, they are not losses).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from backend.contract import MessageKind, topic_for
from backend.mqtt import ConnectOptions, MqttClient, MqttError, client_tls_context
from backend.retry import Backoff
from bench.site import RunningBench
from simulators.errors import LinkError
from simulators.mqtt_link import MqttLink
from simulators.tls_sessions import TlsSessions

#: What the backend's session subscribes to: the storm's telemetry.
STORM_FILTER = "aurora/sensors/+/telemetry"
#: Phases of a storm message, in its payload.
BEFORE, DURING = "queued_at_broker", "queued_on_device"


def storm_payload(device_id: str, phase: str) -> bytes:
    """A contract telemetry message naming its device and phase (the loss key)."""
    return json.dumps(
        {"device_id": device_id, "metric": "storm_phase", "value": 1.0, "unit": phase},
        separators=(",", ":"),
    ).encode()


def storm_key(payload: bytes) -> tuple[str, str] | None:
    """(device_id, phase) of a storm message; None for anything else."""
    try:
        data = json.loads(payload)
        return str(data["device_id"]), str(data["unit"])
    except (ValueError, KeyError, TypeError):
        return None


_NO_GATE = contextlib.nullcontext()


class StormDevice:
    """One device: reconnects with jittered backoff and empties its queue on PUBACKs."""

    def __init__(self, link: MqttLink, backoff: Backoff) -> None:
        self.link = link
        self.backoff = backoff
        self.outbox: deque[bytes] = deque()
        self.acked = 0
        self.connects = 0
        self.failures = 0
        self.last_error = ""
        self.connected = asyncio.Event()
        self.connected_at = 0.0
        self._wake = asyncio.Event()
        self._rng = random.Random(f"storm:{link.device_id}")

    @property
    def device_id(self) -> str:
        """The device's id (its certificate's CN)."""
        return self.link.device_id

    def queue(self, payload: bytes) -> None:
        """Hand a QoS 1 message to the radio: kept until the broker PUBACKs it."""
        self.outbox.append(payload)
        self._wake.set()

    async def run(self, first: asyncio.Semaphore | None = None) -> None:
        """Connect, send, reconnect after a loss, until cancelled.

        ``first`` bounds the first connects in flight (the fleet powering up is a ramp,
        not the storm under test).
        """
        delays = self.backoff.delays(self._rng)
        try:
            while True:
                try:
                    async with first if first is not None and not self.connects else _NO_GATE:
                        await self.link.connect(lambda _k, _p: None, on_lost=self._lost)
                except LinkError as error:
                    self.failures += 1
                    self.last_error = str(error)
                    await asyncio.sleep(next(delays))
                    continue
                delays = self.backoff.delays(self._rng)
                self.connects += 1
                self.connected_at = time.perf_counter()
                self.connected.set()
                await self._serve()
                self.connected.clear()
                await self.link.aclose()
                # Not at once: every device lost the broker in the same instant.
                await asyncio.sleep(next(delays))
        finally:
            self.connected.clear()
            await self.link.aclose()

    async def _serve(self) -> None:
        """Publish the queue head until the link is lost."""
        topic = topic_for(MessageKind.TELEMETRY, self.device_id)
        while self.connected.is_set():
            if not self.outbox:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                result = await self.link.publish(None, self.outbox[0], 1, topic=topic)
            except LinkError as error:
                self.last_error = str(error)
                return
            if not result.accepted:  # the ACL refused it: a bug, not an outage
                self.last_error = f"PUBACK {result.reason_code}"
            self.outbox.popleft()
            self.acked += 1

    def _lost(self, reason: str) -> None:
        self.last_error = reason
        self.connected.clear()
        self._wake.set()


@dataclass
class BackendSession:
    """The backend's persistent session: what it received, by (device, phase)."""

    options: ConnectOptions
    received: dict[tuple[str, str], int] = field(default_factory=dict)
    client: MqttClient | None = None
    _reader: asyncio.Task[None] | None = None

    async def connect(self) -> bool:
        """Connect (resuming the session) and read in the background; True: session present."""
        client = await MqttClient.connect(self.options)
        self.client = client
        present = bool(client.connack and client.connack.session_present)
        if not present:
            await client.subscribe([(STORM_FILTER, 1)])
        self._reader = asyncio.create_task(self._read(client), name="storm-backend")
        return present

    async def _read(self, client: MqttClient) -> None:
        with contextlib.suppress(MqttError):
            while True:
                for message in await client.receive():
                    key = storm_key(message.payload)
                    if key is not None:
                        self.received[key] = self.received.get(key, 0) + 1

    async def disconnect(self) -> None:
        """Normal DISCONNECT: the session and its subscription stay at the broker."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        client, self.client = self.client, None
        if client is not None:
            await client.aclose()


@dataclass
class StormResult:
    """What the storm measured."""

    devices: int
    back_s: float
    flushed_s: float
    down_s: float
    expected: int
    received: int
    lost: int
    duplicates: int
    resumed: int
    full: int
    offered_not_resumed: int
    failures: int
    session_present: bool
    missing: list[tuple[str, str]]
    #: This process's CPU seconds from the broker serving again until every queue was empty.
    client_cpu_s: float = 0.0


async def wait_until(
    check: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.05
) -> None:
    """Poll ``check`` until it holds; TimeoutError naming ``what`` after ``timeout_s``."""
    deadline = time.perf_counter() + timeout_s
    while not check():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"not within {timeout_s:g} s: {what}")
        await asyncio.sleep(poll_s)


async def storm(
    devices: Sequence[StormDevice],
    backend: BackendSession,
    restart: Callable[[], Awaitable[float]],
    *,
    counts: Callable[[], tuple[int, int, int]],
    timeout_s: float = 120.0,
    first_in_flight: int = 64,
    progress: Callable[[str], None] = lambda _text: None,
) -> StormResult:
    """Connect ``devices``, restart the broker with ``restart()`` (returns the seconds it
    was down; it must queue the devices' "during" messages itself, see
    :func:`queue_during`), and measure the way back.

    ``counts()`` gives the (resumed, full, offered but not resumed) handshake counters.
    The devices' tasks are this function's: cancelled and their links closed on return.
    """
    await backend.connect()
    gate = asyncio.Semaphore(first_in_flight)
    tasks = [asyncio.create_task(d.run(gate), name=f"storm:{d.device_id}") for d in devices]
    try:
        await wait_until(
            lambda: all(d.connected.is_set() for d in devices), timeout_s, "every device up"
        )
        progress(f"storm: {len(devices)} devices connected; the backend goes away")
        await backend.disconnect()
        for device in devices:
            device.queue(storm_payload(device.device_id, BEFORE))
        await wait_until(
            lambda: all(not d.outbox for d in devices), timeout_s, "the broker queued them"
        )
        before = counts()
        failures_before = sum(d.failures for d in devices)
        progress("storm: broker holds one message per device for the backend; restarting it")
        down_s = await restart()
        up = time.perf_counter()
        cpu_up = time.process_time()
        await wait_until(
            lambda: all(d.connects >= 2 and d.connected.is_set() for d in devices),
            timeout_s,
            "every device back",
        )
        back_s = max(d.connected_at for d in devices) - up
        await wait_until(lambda: all(not d.outbox for d in devices), timeout_s, "queues empty")
        flushed_s = time.perf_counter() - up
        client_cpu_s = time.process_time() - cpu_up
        after = counts()
        progress(f"storm: all {len(devices)} back {back_s:.1f} s after the broker was up")
        present = await backend.connect()
        expected = {(d.device_id, phase) for d in devices for phase in (BEFORE, DURING)}
        with contextlib.suppress(TimeoutError):
            await wait_until(lambda: expected <= backend.received.keys(), 30.0, "all received")
        await backend.disconnect()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await backend.disconnect()  # a no-op unless a phase failed half-way
    missing = sorted(expected - backend.received.keys())
    got = [backend.received[key] for key in expected if key in backend.received]
    return StormResult(
        devices=len(devices),
        back_s=back_s,
        flushed_s=flushed_s,
        down_s=down_s,
        expected=len(expected),
        received=len(got),
        lost=len(missing),
        duplicates=sum(got) - len(got),
        resumed=after[0] - before[0],
        full=after[1] - before[1],
        offered_not_resumed=after[2] - before[2],
        failures=sum(d.failures for d in devices) - failures_before,
        session_present=present,
        missing=missing[:10],
        client_cpu_s=client_cpu_s,
    )


async def queue_during(devices: Sequence[StormDevice], timeout_s: float = 30.0) -> None:
    """Once every device noticed the broker is gone, each queues one message on itself."""
    await wait_until(
        lambda: not any(d.connected.is_set() for d in devices), timeout_s, "every device down"
    )
    for device in devices:
        device.queue(storm_payload(device.device_id, DURING))


async def restart_broker(bench: RunningBench, site: str, devices: Sequence[StormDevice]) -> float:
    """Stop the site's Mosquitto (SIGTERM: it saves its persistence), let every device
    queue a message while it is down, start it again on the same port; seconds down."""
    started = time.perf_counter()
    await asyncio.to_thread(bench.stop_service, site, "mosquitto")
    await queue_during(devices)
    await asyncio.to_thread(bench.start_service, site, "mosquitto")
    return time.perf_counter() - started


def backend_session(bench: RunningBench, site: str, client_id: str) -> BackendSession:
    """A persistent session with the site backend's identity (reads ``aurora/#``)."""
    endpoint = bench.site(site).mqtt
    cert = bench.backend_cert(site)
    options = ConnectOptions(
        endpoint.host,
        endpoint.port,
        client_id,
        tls=client_tls_context(bench.pki.ca_cert, cert.cert, cert.key),
        clean_start=False,
        session_expiry_s=3600,
        timeout_s=30.0,
        tls_over_bio=False,
    )
    return BackendSession(options)


def storm_devices(
    bench: RunningBench,
    site: str,
    ids: Sequence[str],
    sessions: TlsSessions,
    backoff: Backoff,
    *,
    timeout_s: float = 30.0,
) -> list[StormDevice]:
    """One :class:`StormDevice` per id, each with its own certificate from the bench PKI."""
    endpoint = bench.site(site).mqtt
    devices = []
    for device_id in ids:
        pair = bench.pki.device(device_id)
        link = MqttLink.from_files(
            device_id,
            endpoint.host,
            endpoint.port,
            ca=bench.pki.ca_cert,
            cert=pair.cert,
            key=pair.key,
            sessions=sessions,
            timeout_s=timeout_s,
        )
        devices.append(StormDevice(link, backoff))
    return devices
