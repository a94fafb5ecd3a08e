"""The network of a WAN bench: one namespace per site, how the root namespace reaches it,
and the routed TUN link between the sites.

Addresses come from one ``10.201.<block>.0/24`` per bench (a free block is picked under a
lock, so two WAN benches can run side by side)::

    root ns  10.201.B.1/30 --veth-- 10.201.B.2/30  site 0 (every service of the site)
    root ns  10.201.B.5/30 --veth-- 10.201.B.6/30  site 1
    site 0   10.201.B.9/30 --veth-- 10.201.B.10/30 load "host" (locust workers)
    root ns  10.201.B.13/30 --veth-- 10.201.B.14/30 load "host" (its management link:
                                                    the workers reach their master here)
    site 0   <-- wan TUN, routes to each other's /30 --> site 1

Scripts in the root namespace reach a site at its ``10.201.B.{2,6}`` address directly (on
the veth's subnet); the sites reach each other only through the emulated link. The
namespaces outlive a SIGKILLed bench (their processes do not: pdeathsig); the next WAN
bench removes those of owners that are gone (:func:`sweep_orphans`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import BenchError
from bench.file_lock import file_lock

BASE = "10.201"
RUN_DIR = Path("/run/aurora-bench-wan")
BLOCKS = range(1, 251)
LOADER_INDEX = 2


class WanError(BenchError):
    """The emulated WAN cannot be set up here (not root, no ``ip``, no TUN) or failed."""


def is_wan_address(host: str) -> bool:
    """True for an address of a WAN bench's namespaces (:class:`AddressPlan`)."""
    return host.startswith(f"{BASE}.")


def support_problem() -> str | None:
    """Why this machine cannot run a WAN bench, or None when it can."""
    if os.geteuid() != 0:
        return "--wan needs root: it creates network namespaces (ip netns) and TUN devices"
    if shutil.which("ip") is None:
        return "--wan needs the `ip` tool (apt-get install iproute2)"
    if not Path("/dev/net/tun").exists():
        return "--wan needs /dev/net/tun (the kernel's TUN driver) for the emulated link"
    if not Path("/proc/self/ns/net").exists():
        return "--wan needs network namespaces (kernel without CONFIG_NET_NS)"
    return None


def ip(*args: str, namespace: str | None = None) -> None:
    """Run ``ip [-n NS] ARGS``; WanError with its stderr when it fails."""
    command = ["ip", *(["-n", namespace] if namespace else []), *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise WanError(f"`{' '.join(command)}` failed: {result.stderr.strip()}")


@dataclass(frozen=True)
class AddressPlan:
    """Names and addresses of one WAN bench (block ``B`` of ``10.201.B.0/24``)."""

    block: int

    def namespace(self, index: int) -> str:
        """Namespace of site ``index`` (0, 1) or of the load host (:data:`LOADER_INDEX`)."""
        role = "load" if index == LOADER_INDEX else f"site{index}"
        return f"aurora-wan{self.block}-{role}"

    def site_ip(self, index: int) -> str:
        """Where every service of site ``index`` listens."""
        return f"{BASE}.{self.block}.{4 * index + 2}"

    def gateway_ip(self, index: int) -> str:
        """The root namespace's end of site ``index``'s veth (how a site reaches the bench's
        own listeners, such as the token issuer)."""
        return f"{BASE}.{self.block}.{4 * index + 1}"

    def subnet(self, index: int) -> str:
        """The /30 of site ``index``'s veth (routed across the WAN for the peer)."""
        return f"{BASE}.{self.block}.{4 * index}/30"

    def root_veth(self, index: int) -> str:
        """The root namespace's veth end of site ``index``."""
        return f"awn{self.block}r{index}"

    def tun(self, index: int) -> str:
        """Site ``index``'s end of the emulated link."""
        return f"awn{self.block}t{index}"

    def loader_ip(self) -> str:
        """The load host's address (on a veth to site 0)."""
        return f"{BASE}.{self.block}.10"

    def master_ip(self) -> str:
        """The root namespace's end of the load host's management veth (the locust master
        listens there for its workers)."""
        return f"{BASE}.{self.block}.13"


@dataclass
class Topology:
    """The namespaces and veths of one WAN bench; :meth:`remove` is idempotent."""

    plan: AddressPlan
    sites: int
    created: list[str] = field(default_factory=list)
    _removed: bool = False

    def create_sites(self) -> None:
        """A namespace per site with its veth to the root namespace, addresses up."""
        for index in range(self.sites):
            self._create_namespace(index)
            ns, veth = self.plan.namespace(index), self.plan.root_veth(index)
            ip("link", "add", veth, "type", "veth", "peer", "name", "lan0", "netns", ns)
            ip("addr", "add", f"{self.plan.gateway_ip(index)}/30", "dev", veth)
            ip("link", "set", veth, "up")
            ip("addr", "add", f"{self.plan.site_ip(index)}/30", "dev", "lan0", namespace=ns)
            ip("link", "set", "lan0", "up", namespace=ns)

    def attach_link(self) -> None:
        """Move the link process's TUN devices into the sites and route each peer's /30."""
        for index in range(self.sites):
            ns, tun = self.plan.namespace(index), self.plan.tun(index)
            peer = 1 - index
            ip("link", "set", tun, "netns", ns)
            ip("link", "set", tun, "up", namespace=ns)
            ip(
                "route", "add", self.plan.subnet(peer), "dev", tun,
                "src", self.plan.site_ip(index), namespace=ns,
            )  # fmt: skip

    def create_loader(self) -> str:
        """The load host: its own namespace on a veth to site 0; returns its name."""
        index = LOADER_INDEX
        self._create_namespace(index)
        ns, site_ns = self.plan.namespace(index), self.plan.namespace(0)
        ip("link", "add", "load0", "netns", ns, "type", "veth", "peer", "name", "load0",
           "netns", site_ns)  # fmt: skip
        ip("addr", "add", f"{self.plan.loader_ip()}/30", "dev", "load0", namespace=ns)
        ip("link", "set", "load0", "up", namespace=ns)
        gateway = f"{BASE}.{self.plan.block}.9"
        ip("addr", "add", f"{gateway}/30", "dev", "load0", namespace=site_ns)
        ip("link", "set", "load0", "up", namespace=site_ns)
        # Site 0's services listen on its LAN address, which its namespace accepts on any
        # of its interfaces: the load host routes that one address through the veth.
        ip("route", "add", f"{self.plan.site_ip(0)}/32", "via", gateway, namespace=ns)
        # The management link: a lab's load machines reach their locust master this way.
        veth, master = self.plan.root_veth(index), self.plan.master_ip()
        ip("link", "add", veth, "type", "veth", "peer", "name", "mgmt0", "netns", ns)
        ip("addr", "add", f"{master}/30", "dev", veth)
        ip("link", "set", veth, "up")
        ip("addr", "add", f"{BASE}.{self.plan.block}.14/30", "dev", "mgmt0", namespace=ns)
        ip("link", "set", "mgmt0", "up", namespace=ns)
        return ns

    def _create_namespace(self, index: int) -> None:
        ns = self.plan.namespace(index)
        ip("netns", "add", ns)
        self.created.append(ns)
        ip("link", "set", "lo", "up", namespace=ns)

    def remove(self) -> None:
        """Delete the namespaces (their veth pairs go with them) and the ownership file."""
        if self._removed:
            return
        self._removed = True
        errors: list[str] = []
        for ns in reversed(self.created):
            try:
                ip("netns", "del", ns)
            except WanError as error:
                errors.append(str(error))
        with contextlib.suppress(OSError):
            _owner_file(self.plan.block).unlink()
        if errors:
            raise WanError("; ".join(errors))


def _owner_file(block: int) -> Path:
    return RUN_DIR / f"block{block}.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _namespaces() -> list[str]:
    result = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]


def _blocks_with_links() -> set[int]:
    """Blocks whose root veths still exist: a deleted namespace lives on (and keeps its
    veth) until its last socket is gone, which took over a minute here after a bench
    whose link had been cut."""
    result = subprocess.run(
        ["ip", "-o", "link", "show"], capture_output=True, text=True, check=False
    )
    blocks: set[int] = set()
    for line in result.stdout.splitlines():
        parts = line.split(":", 2)
        name = parts[1].strip().split("@", 1)[0] if len(parts) > 1 else ""
        if name.startswith("awn") and "r" in name:
            digits = name.removeprefix("awn").split("r", 1)[0]
            if digits.isdigit():
                blocks.add(int(digits))
    return blocks


def sweep_orphans() -> list[str]:
    """Remove the namespaces of WAN benches whose owner process is gone; returns them.

    Called under the lock by :func:`claim_plan`; a namespace of a live owner is kept.
    """
    removed: list[str] = []
    live_blocks: set[int] = set()
    for path in RUN_DIR.glob("block*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            owner = json.loads(path.read_text())
            if _alive(int(owner["pid"])):
                live_blocks.add(int(owner["block"]))
                continue
            path.unlink()
    for ns in _namespaces():
        if not ns.startswith("aurora-wan"):
            continue
        block_text = ns.removeprefix("aurora-wan").split("-", 1)[0]
        if block_text.isdigit() and int(block_text) not in live_blocks:
            with contextlib.suppress(WanError):
                ip("netns", "del", ns)
                removed.append(ns)
    return removed


def claim_plan(sites: int) -> Topology:
    """Pick a free address block for this process, sweeping orphans first."""
    with file_lock(RUN_DIR / ".lock"):
        sweep_orphans()
        taken = {
            int(text)
            for ns in _namespaces()
            if ns.startswith("aurora-wan")
            and (text := ns.removeprefix("aurora-wan").split("-", 1)[0]).isdigit()
        }
        taken |= _blocks_with_links()
        taken |= {
            int(path.stem.removeprefix("block"))
            for path in RUN_DIR.glob("block*.json")
            if path.stem.removeprefix("block").isdigit()
        }
        for block in BLOCKS:
            if block not in taken:
                _owner_file(block).write_text(json.dumps({"pid": os.getpid(), "block": block}))
                return Topology(AddressPlan(block), sites)
    raise WanError(f"every WAN address block is in use ({len(BLOCKS)} benches?)")
