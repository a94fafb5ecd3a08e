"""The WAN link process: two TUN devices and the delay lines between them.

Run by the bench as ``python -m bench.wan.link --tun A --tun B --control SOCKET ...``
(a :class:`~bench.services.process.Service`, so it dies with the bench). It creates both
TUN devices in the root namespace; the bench then moves each into its site's namespace
(the file descriptors stay attached). Every packet read from one device is written to the
other after its :class:`~bench.wan.conditions.DelayLine` releases it.

The control socket takes one JSON object per connection and answers one:
``{"op": "set", "delay_ms": 50, "jitter_ms": 10, "loss": 0.01}``, ``{"op": "cut"}``,
``{"op": "restore"}`` and ``{"op": "stats"}``; each answers ``{"ok": true, "stats": ...}``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import json
import os
import random
import selectors
import signal
import socket
import struct
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.wan.conditions import DelayLine, LinkConditions

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
#: Larger than any MTU the namespaces use; a TUN read returns one whole packet.
MAX_PACKET = 65_536
#: Packets read from one device per wake-up before the other side gets its turn.
READ_BURST = 64
#: Real-time priority of the link (SCHED_FIFO, root): netem runs in the kernel's softirq,
#: ahead of every process, so an emulated link should not wait behind the very processes it
#: carries traffic for. At an ordinary priority (even nice -10) it does on a loaded machine:
#: the link's own round-trip p99 was +18 ms over 100 ms at load 6 on 2 cores. It sleeps in
#: select() between packets, so it takes little CPU; the kernel's RT throttling bounds it.
LINK_RT_PRIORITY = 10
#: Where real-time scheduling is refused: the best an ordinary process gets.
LINK_NICE = -10


def open_tun(name: str) -> int:
    """Create TUN device ``name`` (raw IP packets, no header) and return its descriptor."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


class Link:
    """Both directions of the link and the control socket, driven by one selector."""

    def __init__(self, tuns: tuple[int, int], control: socket.socket, seed: int | None) -> None:
        rng = random.Random(seed)
        self.conditions = LinkConditions()
        self._tuns = tuns
        #: lines[0] carries packets from device 0 to device 1, lines[1] the way back.
        self._lines = (DelayLine(self.conditions, rng), DelayLine(self.conditions, rng))
        self._control = control
        self._selector = selectors.DefaultSelector()
        for index, fd in enumerate(tuns):
            self._selector.register(fd, selectors.EVENT_READ, index)
        self._selector.register(control, selectors.EVENT_READ, None)

    def apply(self, conditions: LinkConditions) -> None:
        """New conditions for both directions; a cut also loses what is in flight."""
        self.conditions = conditions
        for line in self._lines:
            line.conditions = conditions
            if conditions.cut:
                line.flush()

    def stats(self) -> dict[str, Any]:
        """Conditions and packet counts, as the control socket answers them."""
        return {
            "conditions": asdict(self.conditions),
            "passed": [line.passed for line in self._lines],
            "dropped": [line.dropped for line in self._lines],
        }

    def run(self) -> None:
        """Forward until SIGTERM (raised as SystemExit by the handler main installs)."""
        while True:
            now = time.monotonic()
            dues = [due for line in self._lines if (due := line.next_due()) is not None]
            timeout = max(0.0, min(dues) - now) if dues else None
            for key, _events in self._selector.select(timeout):
                if key.data is None:
                    self._answer_control()
                else:
                    self._read(key.data)
            now = time.monotonic()
            for index, line in enumerate(self._lines):
                for packet in line.release(now):
                    # The far device may be down (a namespace going away): the packet is
                    # lost, as on a real link.
                    with contextlib.suppress(OSError):
                        os.write(self._tuns[1 - index], packet)

    def _read(self, index: int) -> None:
        line = self._lines[index]
        for _ in range(READ_BURST):
            try:
                packet = os.read(self._tuns[index], MAX_PACKET)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                if error.errno == errno.EBADFD:
                    # The device is gone (its namespace was deleted): poll() would report
                    # it readable forever, a busy loop at real-time priority.
                    self._selector.unregister(self._tuns[index])
                return  # device down meanwhile; the selector wakes us when it is back
            line.admit(packet, time.monotonic())

    def _answer_control(self) -> None:
        connection, _ = self._control.accept()
        with connection:
            connection.settimeout(2.0)
            try:
                request = json.loads(_read_line(connection))
                answer = self._handle(request)
            except (OSError, ValueError, TypeError, KeyError) as error:
                answer = {"ok": False, "error": f"{type(error).__name__}: {error}"}
            with contextlib.suppress(OSError):
                connection.sendall(json.dumps(answer).encode() + b"\n")

    def _handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request["op"]
        if op == "set":
            self.apply(
                LinkConditions(
                    delay_ms=float(request["delay_ms"]),
                    jitter_ms=float(request["jitter_ms"]),
                    loss=float(request["loss"]),
                    cut=self.conditions.cut,
                )
            )
        elif op in ("cut", "restore"):
            self.apply(self.conditions.cut_off(op == "cut"))
        elif op != "stats":
            return {"ok": False, "error": f"unknown op {op!r}"}
        return {"ok": True, "stats": self.stats()}


def _read_line(connection: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n") and len(data) < 4096:
        chunk = connection.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _prioritise() -> None:
    """Real-time scheduling for this process, else the lowest nice value allowed."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(LINK_RT_PRIORITY))
        return
    except OSError:
        pass
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, LINK_NICE)


def main(argv: list[str] | None = None) -> None:
    """Create the devices, listen on the control socket, forward until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.wan.link")
    parser.add_argument("--tun", action="append", required=True, help="device name (twice)")
    parser.add_argument("--control", type=Path, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--loss", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    if len(args.tun) != 2:
        parser.error("give --tun exactly twice")

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    _prioritise()
    tuns = (open_tun(args.tun[0]), open_tun(args.tun[1]))
    args.control.unlink(missing_ok=True)
    control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    control.bind(str(args.control))
    control.listen(8)
    link = Link(tuns, control, args.seed)
    link.apply(LinkConditions(args.delay_ms, args.jitter_ms, args.loss))
    try:
        link.run()
    finally:
        args.control.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
