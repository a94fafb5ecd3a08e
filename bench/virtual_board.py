"""A simulated board behind a pseudo-terminal: the real-board path without hardware.

:class:`VirtualBoard` runs one board model of :mod:`simulators` (paced by the clock bridge)
and speaks the serial frame protocol of DESIGN.md on a PTY from :mod:`hardware.pty_port`.
What the model sends goes up as ``@aurora <kind> <json>`` lines, together with log lines
like a firmware's; ``command`` and ``attestation_request`` frames coming down are handed to
the model. The bridge, pyserial, framing and conformance checker all run unchanged on it.

Scripted input (one command per line, e.g. from a test through stdin)::

    swipe <UID>            hold a badge to the reader (door, access)
    unplug | replug        pull / plug the USB cable (the PTY goes away / comes back)
    raw <text>             write <text> as a line on the wire (e.g. a malformed frame)
    log <text>             write a board log line
    fault <name> [k=v ..]  inject a simulator fault (values parsed as JSON when they can be)
    status                 send a status frame now
    state                  print the board's state
    quit                   stop

Every reply and event is one line on the console: ``ok ...``, ``error: ...``,
``lock unlocked``, ``command unlock``, ``pty /dev/pts/N``.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import simpy

from backend.contract import MessageKind, validate_device_id
from hardware.framing import DOWNSTREAM_KINDS, MARKER, Frame, FrameDecoder, Violation
from hardware.pty_port import PtyPort
from simulators.board_names import board_name_problem
from simulators.boards import BOARDS, AccessBenchNode, DoorNode
from simulators.clock import ClockBridge
from simulators.errors import SimulatorError
from simulators.identity import DeviceIdentity
from simulators.node import Node
from simulators.outbox import Outgoing, PresenceChange, QueueOutbox

SCRIPT_HELP = (
    "swipe UID | unplug | replug | raw TEXT | log TEXT | fault NAME [k=v ...] | status | "
    "state | quit"
)


class ScriptError(ValueError):
    """A scripted command the board cannot run; the message says what would work."""


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


class VirtualBoard:
    """One simulated board on one PTY (see the module doc)."""

    def __init__(
        self,
        board: str,
        device_id: str,
        link_path: Path,
        *,
        identity: DeviceIdentity | None = None,
        heartbeat_s: float = 5.0,
        speed: float = 1.0,
        seed: int = 0,
        say: Callable[[str], None] = print,
    ) -> None:
        problem = board_name_problem(board)
        if problem is not None:
            raise ScriptError(problem)
        self.board = board
        self.device_id = validate_device_id(device_id)
        self.say = say
        self.env = simpy.Environment()
        self.outbox = QueueOutbox()
        node_type = BOARDS[board]
        config = node_type.config_type(heartbeat_s=heartbeat_s, boot_jitter_s=0.0)
        self.node: Node = node_type(
            self.env, device_id, self.outbox, config=config, identity=identity, seed=seed
        )
        self.clock = ClockBridge(self.env, speed)
        self.node.external = self.clock.call_soon
        # The backend checks attestation challenges against real time; so must the board.
        self.node.wall_clock = time.time
        self.port = PtyPort(link_path)
        self._decoder = FrameDecoder(accept=DOWNSTREAM_KINDS)
        self._booted_at_s = time.monotonic()
        self.stopped = asyncio.Event()

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Plug in, boot the model and serve the PTY until cancelled or ``quit``."""
        self.plug()
        self.node.start()
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(self.clock.run(), name=f"clock {self.device_id}"),
                    group.create_task(self._uplink(), name=f"uplink {self.device_id}"),
                    group.create_task(self._downlink(), name=f"downlink {self.device_id}"),
                ]
                await self.stopped.wait()
                for task in tasks:
                    task.cancel()
        finally:
            self.port.unplug()

    def plug(self) -> str:
        """Create the PTY (again) and boot: the board's banner and a status go out."""
        path = self.port.plug()
        self.say(f"pty {self.port.slave_path}")
        self.say(f"link {path}")
        self.log_line(f"aurora virtual {self.board} {self.device_id} booting")
        return path

    def unplug(self) -> None:
        """Pull the cable: the PTY closes and the link disappears."""
        self.port.unplug()
        self.say("unplugged")

    def replug(self) -> None:
        """Plug the cable back: a fresh PTY, and the board reboots (status at once)."""
        self.plug()
        self.clock.call_soon(self.node.send_status)

    def log_line(self, text: str) -> None:
        """Write a firmware-style log line (``I (ms) text``) on the wire."""
        elapsed_ms = int((time.monotonic() - self._booted_at_s) * 1000)
        self.port.write(f"I ({elapsed_ms}) {text}\n".encode())

    @property
    def lock_state(self) -> str | None:
        """The door's lock state (None for boards without a lock)."""
        if isinstance(self.node, DoorNode):
            return self.node.lock_state.value
        return None

    async def _uplink(self) -> None:
        last_lock = self.lock_state
        while True:
            item = await self.outbox.get()
            if isinstance(item, Outgoing):
                self._send(item)
            elif isinstance(item, PresenceChange):
                self.log_line(f"net: {'online' if item.online else 'offline'}")
                continue
            lock = self.lock_state
            if lock != last_lock:
                last_lock = lock
                self.log_line(f"lock: {lock}")
                self.say(f"lock {lock}")

    def _send(self, item: Outgoing) -> None:
        if item.kind is None:
            # A message outside the contract (the C2 beacon fault) has no frame kind: on a
            # serial line it can only show up as log output.
            self.log_line(f"net: publish {item.topic} {item.payload.decode(errors='replace')}")
            return
        if item.kind is not MessageKind.TELEMETRY:
            # Firmware logs what it sends; telemetry would drown the rest.
            self.log_line(f"tx: {item.kind.value}")
        self.port.write(MARKER + item.kind.value.encode() + b" " + item.payload + b"\n")

    async def _downlink(self) -> None:
        while True:
            data = await self.port.read()
            for item in self._decoder.feed(data):
                if isinstance(item, Frame):
                    self._received(item)
                elif isinstance(item, Violation):
                    self.log_line(f"rx: rejected {item.one_line()}")
                    self.say(f"rejected {item.one_line()}")

    def _received(self, frame: Frame) -> None:
        what = frame.kind.value
        verb = getattr(frame.message, "verb", None)
        if frame.kind is MessageKind.COMMAND and verb is not None:
            what = f"command {verb.value}"
        self.log_line(f"rx: {what}")
        self.say(what)
        self.node.deliver(frame.kind, frame.payload)

    # -- scripted input --------------------------------------------------------------------

    def execute(self, line: str) -> str:
        """Run one scripted command; returns the reply line (``ok ...`` or ``error: ...``)."""
        try:
            return self._execute(line)
        except (ScriptError, SimulatorError, ValueError) as error:
            return f"error: {error}"

    def _execute(self, line: str) -> str:
        words = shlex.split(line)
        if not words:
            return "ok"
        command, args = words[0].lower(), words[1:]
        rest = line.strip()[len(words[0]) :].strip()
        if command == "swipe":
            if len(args) != 1:
                raise ScriptError("usage: swipe UID (8-20 hex digits)")
            if not isinstance(self.node, AccessBenchNode):
                raise ScriptError(f"a {self.board} board has no badge reader")
            self.node.swipe(args[0])
            return f"ok swipe {args[0]}"
        if command == "unplug":
            self.unplug()
            return "ok unplug"
        if command in ("replug", "plug"):
            self.replug()
            return "ok replug"
        if command == "raw":
            self.port.write(rest.encode() + b"\n")
            return "ok raw"
        if command == "log":
            self.log_line(rest)
            return "ok log"
        if command == "fault":
            if not args:
                raise ScriptError("usage: fault NAME [key=value ...]")
            params: dict[str, Any] = {}
            for arg in args[1:]:
                key, sep, value = arg.partition("=")
                if not sep:
                    raise ScriptError(f"fault parameter {arg!r} is not key=value")
                params[key] = _value(value)
            self.node.inject(args[0], **params)
            return f"ok fault {args[0]}"
        if command == "status":
            self.clock.call_soon(self.node.send_status)
            return "ok status"
        if command == "state":
            lock = f" lock={self.lock_state}" if self.lock_state else ""
            plugged = "plugged" if self.port.plugged else "unplugged"
            sent = sum(self.node.sent.values())
            return f"ok state {plugged}{lock} sent={sent} dropped_bytes={self.port.dropped_bytes}"
        if command == "quit":
            self.stopped.set()
            return "ok quit"
        raise ScriptError(f"unknown command {command!r}; commands: {SCRIPT_HELP}")
