"""Simulated fleets against a running site: MQTT links with each device's own certificate.

``mqtt_fleet`` binds a :class:`~simulators.fleet.Fleet` to a site of bench.json: every
node connects with MQTT v5 over mutual TLS 1.3 using ``<state>/pki/devices/<id>.crt|.key``
(issued on first use) and signs attestation challenges with that same key. ``run_fleet``
is the ``aurora-bench fleet`` command's engine: live lines per board type until the
duration (simulated seconds) ends or the user interrupts.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from backend.retry import Backoff
from bench.benchfile import BenchInfo, read_bench_file
from bench.errors import BenchError
from bench.load.problems import Problems
from bench.pki import Pki
from simulators.errors import SimulatorError
from simulators.fleet import Fleet
from simulators.fleetspec import FleetSpec, load_fleet_spec
from simulators.identity import DeviceIdentity
from simulators.links import LinkStatus
from simulators.mqtt_link import MqttLink
from simulators.tls_sessions import TlsSessions


def raise_nofile_limit(wanted: int) -> int:
    """Raise RLIMIT_NOFILE towards ``wanted`` (capped by the hard limit); returns the soft
    limit now in force. Each mTLS device holds one socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def pki_of(info: BenchInfo) -> Pki:
    """The PKI of a running bench (``ca`` in bench.json lives in ``<state>/pki``)."""
    return Pki.ensure(Path(info.ca).parent)


def mqtt_fleet(
    spec: FleetSpec,
    info: BenchInfo,
    pki: Pki,
    *,
    site: str = "a",
    speed: float = 1.0,
    backoff: Backoff | None = None,
    sessions: TlsSessions | None = None,
) -> Fleet:
    """A fleet whose nodes connect to ``site`` with their own certificates.

    Nodes resume their TLS session on reconnect, as real devices do, kept in ``sessions``
    (a fresh store when None; pass one to read its counts).
    """
    endpoint = info.site(site).mqtt
    ca = Path(info.ca)
    store = sessions if sessions is not None else TlsSessions()

    def link_for(device_id: str) -> MqttLink:
        pair = pki.device(device_id)
        return MqttLink.from_files(
            device_id,
            endpoint.host,
            endpoint.port,
            ca=ca,
            cert=pair.cert,
            key=pair.key,
            sessions=store,
        )

    def identity_for(device_id: str) -> DeviceIdentity:
        pair = pki.device(device_id)
        return DeviceIdentity.from_files(device_id, pair.cert, pair.key)

    raise_nofile_limit(len(spec.device_ids()) * 2 + 256)
    return Fleet(spec, link_for=link_for, identity_for=identity_for, speed=speed, backoff=backoff)


@dataclass(frozen=True, slots=True)
class FleetVerdict:
    """Whether a fleet run did anything: every node connected, something sent, none died."""

    nodes: int
    connected: int
    sent: int
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """True when no check failed."""
        return not self.failures


def judge_fleet(fleet: Fleet) -> FleetVerdict:
    """Judge a fleet that ran (call before :meth:`Fleet.aclose`, which closes every runner).

    A node that never connected fails the run, with the errors grouped by reason as the
    load tool prints them; so does a run that sent nothing, and a node whose runner ended
    while the fleet was still running (it died).
    """
    runners = list(fleet.runners.values())
    problems = Problems()
    for runner in runners:
        if runner.connects == 0:
            device = runner.node.device_id
            # Link errors name their device (as a prefix, or inside the MQTT layer's
            # "as <id>"); the reason is what they have in common, so the id is masked.
            message = (runner.last_error or "never tried to connect").removeprefix(f"{device}: ")
            problems.record("connect", message.replace(device, "<id>"), f"{device}: {message}")
        if runner.status is LinkStatus.CLOSED:
            problems.record("runner", "ended", f"{runner.node.device_id}: its runner ended")
    connected = sum(1 for runner in runners if runner.connects > 0)
    sent = sum(runner.published for runner in runners)
    failures: list[str] = []
    connect_rows = [row.render() for row in problems.rows() if row.cause == "connect"]
    if connected < len(runners):
        failures.append(
            f"{connected}/{len(runners)} devices connected: " + "; ".join(connect_rows[:3])
        )
    if sent == 0:
        failures.append("0 messages sent" + (": no device connected" if not connected else ""))
    died = [row.render() for row in problems.rows() if row.cause == "runner"]
    if died:
        failures.append("device runners died: " + "; ".join(died[:3]))
    return FleetVerdict(len(runners), connected, sent, tuple(failures))


def _render(fleet: Fleet) -> str:
    header = f"t={fleet.sim_time_s:,.0f} s (speed {fleet.bridge.speed:g})"
    return "\n".join([header, *(line.render() for line in fleet.lines())])


async def run_fleet(
    spec_path: Path,
    state_dir: Path,
    *,
    site: str = "a",
    speed: float = 1.0,
    duration_s: float | None = None,
    echo: Callable[[str], None] = print,
    refresh_s: float = 1.0,
    verdicts: list[FleetVerdict] | None = None,
) -> FleetVerdict:
    """Run the fleet of ``spec_path`` against ``site`` until ``duration_s`` simulated
    seconds (forever when None); prints the live lines, then the verdict (also appended to
    ``verdicts``, which survives a Ctrl-C that ends the event loop); returns the verdict."""
    if not speed > 0:
        raise BenchError(f"--speed must be > 0 (got {speed}); use 1 for real time")
    if not math.isfinite(speed):
        raise BenchError("--speed must be finite against a real site: the network is real time")
    try:
        spec = load_fleet_spec(spec_path)
    except SimulatorError as error:
        raise BenchError(str(error)) from None
    info = read_bench_file(state_dir)
    fleet = mqtt_fleet(spec, info, pki_of(info), site=site, speed=speed)
    live = _live_display(echo)
    verdict: FleetVerdict | None = None
    try:
        await fleet.start(duration_s)
        while True:
            live(_render(fleet))
            if duration_s is not None and fleet.sim_time_s >= duration_s:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(refresh_s):
                    await fleet.wait_clock()
                    break
    finally:
        live(_render(fleet))
        verdict = judge_fleet(fleet)
        await fleet.aclose()
        echo(
            f"fleet stopped after {fleet.sim_time_s:,.0f} simulated s: {verdict.sent} messages sent"
        )
        for failure in verdict.failures:
            echo(f"FAIL {failure}")
        if verdicts is not None:
            verdicts.append(verdict)
    return verdict


def _live_display(echo: Callable[[str], None]) -> Callable[[str], None]:
    """In a terminal, redraw the block in place; otherwise print each block."""
    if not sys.stdout.isatty():
        return lambda text: echo(text) if text else None
    state = {"lines": 0}

    def draw(text: str) -> None:
        if not text:
            return
        if state["lines"]:
            sys.stdout.write(f"\x1b[{state['lines']}F\x1b[J")
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        state["lines"] = text.count("\n") + 1

    return draw
