"""The ``wan`` way to run two sites: each in its own network namespace, joined by the
emulated link (:mod:`bench.wan.link`), the services of each listening on its namespace
address with the usual ports.

It is a :class:`~bench.services.providers.SiteProvider` like ``local`` (the same
Mosquitto, Redis and NATS builders, with ``host`` and ``netns``), so
:func:`bench.site.start_bench` runs it the same way; only the link and the namespaces are
its own, removed by :meth:`WanProvider.stop` after the bench stopped the services.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.pki import Pki
from bench.services.local import mosquitto_service, nats_service, redis_service
from bench.services.process import Service, ServiceSpec
from bench.services.providers import SiteServers
from bench.wan import control
from bench.wan.conditions import LinkConditions
from bench.wan.control import WanControlError
from bench.wan.topology import AddressPlan, Topology, WanError, claim_plan, support_problem

#: Each site has its own namespace, so every site uses the well-known ports.
MQTT_PORT, POLICY_PORT, REDIS_PORT = 8883, 8884, 6379
NATS_PORT, NATS_HTTP_PORT, LEAF_PORT, API_PORT = 4222, 8222, 7422, 8080
#: NATS pings every connection this often (default 2 min): across a WAN a silently dead
#: leafnode is closed after two missed pings and redialled every second, instead of
#: waiting for TCP's retransmission backoff once the path is back.
NATS_PING_INTERVAL_S = 5
#: Where a WAN bench describes its network for scripts (next to bench.json).
WAN_FILE = "wan.json"


class WanProvider:
    """Two sites in two namespaces across the emulated link (root only)."""

    name = "local"
    runs_postgres = False

    def __init__(self, state_dir: Path, pki: Pki, conditions: LinkConditions) -> None:
        problem = support_problem()
        if problem is not None:
            raise WanError(problem)
        self._state_dir = state_dir
        self._pki = pki
        self.conditions = conditions
        #: What the bench was started with (:meth:`reset` goes back to it).
        self.configured = conditions
        self.topology: Topology = claim_plan(2)
        self.control_path = state_dir / "wan-link.sock"
        self._services: list[Service] = []
        self._link: Service | None = None
        self.loader_netns: str | None = None

    @property
    def plan(self) -> AddressPlan:
        """Names and addresses of this bench's network."""
        return self.topology.plan

    def add_site(self, site_id: str, directory: Path, index: int, count: int) -> SiteServers:
        """Configure the site's servers on its namespace address (started by :meth:`start`)."""
        if count != 2:
            raise BenchError(f"--wan joins two sites; {count} given")
        host, netns = self.plan.site_ip(index), self.plan.namespace(index)
        servers = SiteServers(
            mqtt_host=host,
            mqtt_port=MQTT_PORT,
            redis_url=f"redis://{host}:{REDIS_PORT}/0",
            nats_url=f"nats://{host}:{NATS_PORT}",
            nats_http_port=NATS_HTTP_PORT,
            leaf_port=LEAF_PORT if index == 0 else None,
            policy_port=POLICY_PORT,
            api_port=API_PORT,
            api_host=host,
            netns=netns,
            gateway=self.plan.gateway_ip(index),
        )
        servers.services["redis"] = redis_service(
            directory, site_id, REDIS_PORT, host=host, netns=netns
        )
        # Site 0 is the leafnode hub (as with ``local``); site 1 dials it across the WAN.
        servers.services["nats"] = nats_service(
            directory,
            self._pki,
            site_id,
            port=NATS_PORT,
            http_port=NATS_HTTP_PORT,
            leaf_listen_port=LEAF_PORT if index == 0 else None,
            leaf_remote_port=LEAF_PORT if index > 0 else None,
            leaf_remote_host=self.plan.site_ip(0),
            host=host,
            netns=netns,
            ping_interval_s=NATS_PING_INTERVAL_S,
        )
        servers.services["mosquitto"] = mosquitto_service(
            directory,
            self._pki,
            site_id,
            MQTT_PORT,
            policy_port=POLICY_PORT,
            policy_http_port=API_PORT,
            host=host,
            netns=netns,
        )
        self._services.extend(servers.services.values())
        return servers

    def start(self) -> None:
        """Namespaces, link, routes; then every server, side by side."""
        self.topology.create_sites()
        self._link = self._link_service()
        self._link.start()
        self.topology.attach_link()
        self.loader_netns = self.topology.create_loader()
        self._write_wan_file()
        for service in self._services:
            service.launch()
        for service in self._services:
            service.wait_ready()

    def stop(self) -> None:
        """Stop the link and remove the namespaces (after the bench stopped the servers)."""
        try:
            if self._link is not None:
                self._link.stop()
        finally:
            (self._state_dir / WAN_FILE).unlink(missing_ok=True)
            self.topology.remove()

    # -- what tests, scenarios and figures do to the link -----------------------------------

    def cut(self) -> None:
        """Drop every packet between the sites until :meth:`restore` (the network, not a
        process: both sites keep running and find out by themselves)."""
        control.cut(self.control_path)

    def restore(self) -> None:
        """Carry packets again with the configured delay, jitter and loss."""
        control.restore(self.control_path)

    def set_conditions(self, conditions: LinkConditions) -> None:
        """Change delay, jitter and loss while running."""
        control.set_conditions(self.control_path, conditions)
        self.conditions = conditions

    def reset(self) -> None:
        """Back to the conditions the bench was started with, link restored."""
        self.set_conditions(self.configured)
        self.restore()

    def stats(self) -> dict[str, Any]:
        """Conditions and packet counts of the link."""
        return control.stats(self.control_path)

    def _link_service(self) -> Service:
        c = self.conditions

        def ready() -> bool:
            try:
                control.stats(self.control_path)
            except WanControlError:
                return False
            return True

        return Service(
            ServiceSpec(
                name="wan-link",
                command=[
                    sys.executable,
                    "-m",
                    "bench.wan.link",
                    "--tun",
                    self.plan.tun(0),
                    "--tun",
                    self.plan.tun(1),
                    "--control",
                    str(self.control_path),
                    "--delay-ms",
                    str(c.delay_ms),
                    "--jitter-ms",
                    str(c.jitter_ms),
                    "--loss",
                    str(c.loss),
                ],
                log=self._state_dir / "wan-link.log",
                ready=ready,
            )
        )

    def _write_wan_file(self) -> None:
        plan = self.plan
        info = {
            "conditions": self.conditions.describe(),
            "control": str(self.control_path),
            "sites": [
                {"netns": plan.namespace(i), "address": plan.site_ip(i), "tun": plan.tun(i)}
                for i in range(2)
            ],
            "load_netns": self.loader_netns,
            "load_address": plan.loader_ip(),
            "master_address": plan.master_ip(),
        }
        (self._state_dir / WAN_FILE).write_text(json.dumps(info, indent=2) + "\n")
