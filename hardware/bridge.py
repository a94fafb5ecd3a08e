"""The serial <-> MQTT bridge: a board on a serial port takes part in a real site.

Two tasks under one TaskGroup, around the sans-I/O :class:`~hardware.session.BridgeSession`:

* the **port task** opens the port (reopening with backoff after an unplug), reads it through
  a :class:`~hardware.link.ByteLink` (pyserial in a thread; the loop never blocks), shows and
  files the board's log lines, reports violations, and queues publish decisions;
* the **broker task** waits for the first status frame to pin the device id, asks the
  injected issuer for that device's client certificate, connects with it (MQTT v5, mTLS),
  subscribes to the board's command and attestation-request topics and writes them down as
  frames, and drains the publish queue. When the broker goes away it retries with backoff;
  the queue is bounded, and every dropped frame is announced.

What the bench owns - the PKI, bench.json, the broker endpoint - is passed in (the hardware
package sees only ``backend.contract``).
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from backend.mqtt import FAILURE, ConnectOptions, MqttClient, MqttError, client_tls_context
from backend.retry import Backoff
from hardware.errors import HardwareError, PortError
from hardware.framing import Violation
from hardware.link import ByteLink
from hardware.session import (
    BridgeSession,
    BridgeStats,
    Pinned,
    Publish,
    SessionEvent,
    describe,
)

#: Frames held while the broker is unreachable; beyond this the oldest are dropped.
DEFAULT_BUFFER_FRAMES = 1000


@dataclass(frozen=True, slots=True)
class BrokerEndpoint:
    """Where the site's Mosquitto listens and the CA that signed its certificate."""

    host: str
    port: int
    ca_cert: Path


@dataclass(frozen=True, slots=True)
class DeviceCredentials:
    """A device's client certificate and key (PEM files; CN = device_id)."""

    cert: Path
    key: Path


#: Issues (or finds) the client certificate of a device id; raises HardwareError if it can't.
CertIssuer = Callable[[str], DeviceCredentials]
#: Opens the board's port; raises PortError while the board is not there.
PortOpener = Callable[[], Awaitable[ByteLink]]
Console = Callable[[str], None]


def safe_name(text: str) -> str:
    """``text`` as a file name (a port path's last part or a device id)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", Path(text).name) or "board"


class BoardLog:
    """``<dir>/<name>.log``: every log line, timestamped, appended across runs.

    Until the device id is known the file is named after the port; :meth:`rename` moves what
    was written so far into the device's file, so one board keeps one log.
    """

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{safe_name(name)}.log"
        self._file: TextIO | None = self.path.open("a", encoding="utf-8")

    def write(self, text: str) -> None:
        """Append one timestamped line."""
        if self._file is None:
            return
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self._file.write(f"{stamp} {text}\n")
        self._file.flush()

    def rename(self, name: str) -> None:
        """Continue in ``<name>.log``, moving this file's lines there."""
        target = self.directory / f"{safe_name(name)}.log"
        if target == self.path:
            return
        self.close()
        with target.open("a", encoding="utf-8") as out:
            out.write(self.path.read_text(encoding="utf-8"))
        self.path.unlink()
        self.path = target
        self._file = target.open("a", encoding="utf-8")

    def close(self) -> None:
        """Close the file; safe to call twice."""
        if self._file is not None:
            self._file.close()
            self._file = None


class Bridge:
    """One board, one port, one site (see the module doc)."""

    def __init__(
        self,
        *,
        port_name: str,
        open_port: PortOpener,
        broker: BrokerEndpoint,
        issue_cert: CertIssuer,
        log_dir: Path,
        console: Console = print,
        buffer_frames: int = DEFAULT_BUFFER_FRAMES,
        retry_max_s: float = 2.0,
    ) -> None:
        self.port_name = port_name
        self._open_port = open_port
        self._broker = broker
        self._issue_cert = issue_cert
        self._console = console
        self._buffer_frames = buffer_frames
        self._retry_max_s = retry_max_s
        self.session = BridgeSession()
        self.log = BoardLog(log_dir, port_name)
        self.violations: deque[Violation] = deque(maxlen=100)
        self._outbound: deque[Publish] = deque()
        self._outbound_ready = asyncio.Event()
        self._pinned = asyncio.Event()
        self._changed = asyncio.Event()
        self._link: ByteLink | None = None
        self._dropped_in_outage = 0

    @property
    def stats(self) -> BridgeStats:
        """What the bridge did so far."""
        return self.session.stats

    @property
    def label(self) -> str:
        """The board's name on the console: its device id once known, else the port."""
        return self.session.device_id or Path(self.port_name).name

    @property
    def buffered(self) -> int:
        """Frames waiting for the broker."""
        return len(self._outbound)

    async def wait_until(self, predicate: Callable[[BridgeStats], bool]) -> None:
        """Return once ``predicate(stats)`` holds (the caller owns the timeout)."""
        while not predicate(self.stats):
            self._changed.clear()
            await self._changed.wait()

    def _touch(self) -> None:
        self._changed.set()

    def _say(self, text: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S.%f")[:-3]
        self._console(f"{stamp} [{self.label}] {text}")

    async def run(self) -> None:
        """Bridge until cancelled. Raises HardwareError when the certificate cannot be had."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._port_loop(), name=f"bridge-port {self.port_name}")
                group.create_task(self._broker_loop(), name=f"bridge-broker {self.port_name}")
        finally:
            self.log.close()

    # -- port side -------------------------------------------------------------------------

    def _backoff(self) -> Backoff:
        """Port and broker retries: from 0.1 s doubling up to ``retry_max_s``, no jitter
        (one board, nothing to de-synchronise)."""
        return Backoff(initial_s=min(0.1, self._retry_max_s), max_s=self._retry_max_s, jitter=0.0)

    async def _port_loop(self) -> None:
        backoff = self._backoff()
        delays = backoff.delays()
        announced_wait = False
        while True:
            try:
                link = await self._open_port()
            except PortError as error:
                if not announced_wait:
                    self._say(f"-- waiting for the board ({error.reason}); retrying")
                    announced_wait = True
                await asyncio.sleep(next(delays))
                continue
            delays = backoff.delays()
            announced_wait = False
            self.session.line_lost()
            self.stats.port_opens += 1
            self._link = link
            self._say(f"-- port {self.port_name} open")
            self._touch()
            try:
                while True:
                    data = await link.read()
                    if data:
                        self._handle(self.session.receive(data))
            except PortError as error:
                self._say(f"-- board disconnected ({error.reason}); reopening")
            finally:
                self._link = None
                await link.aclose()
                self._touch()

    def _handle(self, events: list[SessionEvent]) -> None:
        for event in events:
            if isinstance(event, Publish):
                self._enqueue(event)
                continue
            line = describe(event)
            self._say(line)
            self.log.write(line)
            if isinstance(event, Violation):
                self.violations.append(event)
            elif isinstance(event, Pinned):
                self.log.rename(event.device_id)
                self._pinned.set()
        self._touch()

    def _enqueue(self, publish: Publish) -> None:
        if len(self._outbound) >= self._buffer_frames:
            self._drop(self._outbound.popleft())
        self._outbound.append(publish)
        self._outbound_ready.set()

    def _drop(self, publish: Publish) -> None:
        self.stats.dropped += 1
        self._dropped_in_outage += 1
        count = self._dropped_in_outage
        # Announce the first drop of an outage, then every order of magnitude: clear, not a flood.
        if count & (count - 1) == 0 or count % 1000 == 0:
            self._say(
                f"!! broker unreachable and the buffer of {self._buffer_frames} frames is full: "
                f"dropped the oldest ({publish.kind.value}); {count} dropped in this outage"
            )

    # -- broker side -----------------------------------------------------------------------

    def _tls_context(self, credentials: DeviceCredentials) -> ssl.SSLContext:
        return client_tls_context(self._broker.ca_cert, credentials.cert, credentials.key)

    async def _broker_loop(self) -> None:
        await self._pinned.wait()
        device_id = self.session.device_id
        assert device_id is not None
        try:
            credentials = await asyncio.to_thread(self._issue_cert, device_id)
        except HardwareError as error:
            self._say(f"!! cannot get a client certificate for {device_id}: {error}")
            raise
        self._say(f"-- client certificate for {device_id}: {credentials.cert}")
        try:
            context = await asyncio.to_thread(self._tls_context, credentials)
        except (OSError, ssl.SSLError, MqttError) as error:
            raise HardwareError(
                f"TLS material for {device_id} is unusable ({error}); check "
                f"{credentials.cert}, {credentials.key} and {self._broker.ca_cert}"
            ) from None
        backoff = self._backoff()
        delays = backoff.delays()
        announced_outage = False
        # The MQTT layer's transports disable Nagle: a frame is one small packet that would
        # otherwise wait for the broker's delayed ACK (~40 ms per QoS 1 publish on Linux).
        options = ConnectOptions(
            self._broker.host,
            self._broker.port,
            device_id,
            tls=context,
            keepalive_s=5,
            timeout_s=5,
        )
        while True:
            try:
                client = await MqttClient.connect(options)
                async with client:
                    await client.subscribe([(t, 1) for t in self.session.subscriptions()])
                    delays = backoff.delays()
                    announced_outage = False
                    self.stats.broker_connects += 1
                    where = f"{self._broker.host}:{self._broker.port}"
                    self._say(f"-- connected to the broker at {where} as {device_id}")
                    if self._dropped_in_outage:
                        self._say(
                            f"!! {self._dropped_in_outage} frames were dropped while the "
                            "broker was unreachable"
                        )
                        self._dropped_in_outage = 0
                    self._touch()
                    async with asyncio.TaskGroup() as group:
                        group.create_task(self._publisher(client), name=f"publish {device_id}")
                        group.create_task(self._commands(client), name=f"commands {device_id}")
            except* MqttError as errors:
                if not announced_outage:
                    reason = "; ".join(str(error) for error in errors.exceptions)
                    self._say(
                        f"!! broker unreachable ({reason}); retrying, {len(self._outbound)} "
                        f"frames buffered (at most {self._buffer_frames})"
                    )
                    announced_outage = True
                self._touch()
            await asyncio.sleep(next(delays))

    async def _publisher(self, client: MqttClient) -> None:
        while True:
            while not self._outbound:
                self._outbound_ready.clear()
                await self._outbound_ready.wait()
            publish = self._outbound.popleft()
            try:
                reason = await client.publish(publish.topic, publish.payload, publish.qos)
            except BaseException:
                # Not confirmed: it goes first again after the reconnect (at least once;
                # the backend's handlers are idempotent for this reason).
                if len(self._outbound) >= self._buffer_frames:
                    self._drop(publish)
                else:
                    self._outbound.appendleft(publish)
                raise
            if reason >= FAILURE:
                # The broker answered and refused (e.g. 135, its ACL): say so, never retry.
                self._say(f"!! broker refused {publish.topic}: reason code {reason}")
            else:
                self.stats.published += 1
            self._touch()

    async def _commands(self, client: MqttClient) -> None:
        async for message in client.messages():
            down = self.session.downward(message.topic, message.payload)
            if isinstance(down, Violation):
                self._say(f"!! not sent to the board: {down.one_line()}")
                continue
            link = self._link
            kind = down.kind.value
            if link is None:
                self.stats.commands_dropped += 1
                self._say(f"!! board not connected: {kind} frame dropped")
                self._touch()
                continue
            try:
                await link.write(down.frame)
            except PortError as error:
                self.stats.commands_dropped += 1
                self._say(f"!! {kind} frame not delivered: {error}")
            else:
                self.stats.commands_down += 1
                self._say(f"<- {kind} {down.payload.decode()}")
            self._touch()
