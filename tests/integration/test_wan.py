"""Two sites in two network namespaces across the emulated WAN (issue 17; root only).

The federation link (NATS leafnode and JetStream) really crosses a network here: every
packet between the sites goes through the link process, with 50 ms each way. Skipped
cleanly where namespaces or TUN devices cannot be made (not root, no ``ip``).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.eventually import eventually
from bench.load.summary import LoadSummary
from bench.perf.federation import KEEPALIVE_EXPIRY_S
from bench.site import RunningBench
from bench.wan.conditions import LinkConditions
from bench.wan.topology import support_problem

PROBLEM = support_problem()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(PROBLEM is not None, reason=PROBLEM or ""),
]

#: Shrunk seed thresholds so a cut is seen within seconds.
FAST = {
    "AURORA_HEARTBEAT_INTERVAL_SECONDS": "0.5",
    "AURORA_LINK_DEGRADED_AFTER_S": "2",
    "AURORA_LINK_DOWN_AFTER_S": "4",
}
DELAY_MS, JITTER_MS = 50.0, 5.0


@pytest.fixture(scope="module")
def wan_sites(bench_factory: Callable[..., RunningBench]) -> RunningBench:
    return bench_factory(
        ["a", "b"],
        site_env={"a": dict(FAST), "b": dict(FAST)},
        db="sqlite",
        wan=LinkConditions(delay_ms=DELAY_MS, jitter_ms=JITTER_MS, loss=0.01),
    )


def _client(bench: RunningBench) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=10,
        limits=httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY_S),
        headers=bench.site("a").api_headers(),
    )


async def _topology_link(client: httpx.AsyncClient, api: str) -> dict[str, Any] | None:
    try:
        response = await client.get(f"{api}/api/v1/system/topology")
    except httpx.HTTPError:
        return None
    links = response.json()["links"] if response.status_code == 200 else []
    return links[0] if links else None


async def _status(client: httpx.AsyncClient, api: str) -> str | None:
    link = await _topology_link(client, api)
    return None if link is None else str(link["status"])


async def _post(client: httpx.AsyncClient, api: str, title: str) -> str:
    response = await client.post(
        f"{api}/api/v1/alerts", json={"type": "c2_beacon", "severity": "critical", "title": title}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _federated_from(client: httpx.AsyncClient, api: str, origin: str) -> list[str]:
    response = await client.get(
        f"{api}/api/v1/alerts", params={"source": f"federation:{origin}", "limit": 1000}
    )
    response.raise_for_status()
    return [item["origin_alert_id"] for item in response.json()["items"]]


def test_each_site_lives_in_its_own_namespace_reachable_from_here(
    wan_sites: RunningBench,
) -> None:
    wan = wan_sites.wan
    assert wan is not None
    a, b = wan_sites.site("a"), wan_sites.site("b")
    assert a.mqtt.host == wan.plan.site_ip(0) and b.mqtt.host == wan.plan.site_ip(1)
    assert a.api.startswith(f"http://{wan.plan.site_ip(0)}:")
    for site in (a, b):
        assert httpx.get(f"{site.api}/healthz", timeout=5).status_code == 200
    # Every server runs inside its site's namespace, not in ours.
    nats_pid = wan_sites.service("b", "nats").pid
    assert nats_pid is not None
    assert Path(f"/proc/{nats_pid}/ns/net").stat().st_ino != Path("/proc/self/ns/net").stat().st_ino


async def test_a_federated_alert_crosses_the_wan_and_the_echo_sees_its_delay(
    wan_sites: RunningBench,
) -> None:
    wan = wan_sites.wan
    assert wan is not None
    a_api, b_api = wan_sites.site("a").api, wan_sites.site("b").api
    async with _client(wan_sites) as client:
        await eventually(lambda: _healthy(client, a_api), "a healthy link across the WAN", 60)
        before = wan.stats()
        alert_id = await _post(client, b_api, "across the WAN")

        async def arrived() -> bool:
            return alert_id in await _federated_from(client, a_api, "b")

        await eventually(arrived, "b's alert at a", 30)
        after = wan.stats()
        assert sum(after["passed"]) > sum(before["passed"])  # it went through the link

        # The echo times a round trip through the link: it cannot beat the emulated delay.
        async def echoed() -> float | None:
            link = await _topology_link(client, a_api)
            latency = None if link is None else link["latency_ms"]
            return latency if latency is not None and latency >= DELAY_MS - JITTER_MS else None

        latency = await eventually(echoed, "a link latency at least the one-way delay", 30)
        assert latency >= DELAY_MS - JITTER_MS


async def _healthy(client: httpx.AsyncClient, api: str) -> bool:
    return await _status(client, api) == "healthy"


async def test_a_cut_stops_propagation_and_restore_converges_once(
    wan_sites: RunningBench,
) -> None:
    wan = wan_sites.wan
    assert wan is not None
    a_api, b_api = wan_sites.site("a").api, wan_sites.site("b").api
    async with _client(wan_sites) as client:
        await eventually(lambda: _healthy(client, a_api), "a healthy link", 60)
        await asyncio.to_thread(wan.cut)
        at_cut = wan.stats()
        try:

            async def down_at(api: str) -> bool:
                return await _status(client, api) == "down"

            await eventually(lambda: down_at(a_api), "a sees the link down", 20)
            await eventually(lambda: down_at(b_api), "b sees the link down", 20)
            from_b = [await _post(client, b_api, f"cut b {i}") for i in range(10)]
            from_a = [await _post(client, a_api, f"cut a {i}") for i in range(10)]
            assert not set(from_b) & set(await _federated_from(client, a_api, "b"))
            assert not set(from_a) & set(await _federated_from(client, b_api, "a"))
            during = wan.stats()
            # Not one packet crossed since the cut, though the sites kept trying.
            assert during["conditions"]["cut"] is True
            assert during["passed"] == at_cut["passed"]
            assert sum(during["dropped"]) > sum(at_cut["dropped"])
        finally:
            await asyncio.to_thread(wan.restore)
        for api, origin, ids in ((a_api, "b", from_b), (b_api, "a", from_a)):

            async def arrived(api: str = api, origin: str = origin, ids: list[str] = ids) -> bool:
                return set(ids) <= set(await _federated_from(client, api, origin))

            await eventually(arrived, f"{origin}'s alerts after the restore", 120)
            got = [i for i in await _federated_from(client, api, origin) if i in set(ids)]
            assert sorted(got) == sorted(ids), "an alert arrived twice"
        await eventually(lambda: _healthy(client, a_api), "a healthy link again", 30)


def _rx_bytes(netns: str, device: str) -> int:
    out = subprocess.run(
        ["ip", "-n", netns, "-j", "-s", "link", "show", device],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(json.loads(out)[0]["stats64"]["rx"]["bytes"])


def test_load_from_the_load_host_reaches_site_a_through_its_own_link(
    wan_sites: RunningBench, tmp_path: Path
) -> None:
    wan = wan_sites.wan
    assert wan is not None
    site_ns = wan.plan.namespace(0)
    before = _rx_bytes(site_ns, "load0")
    summary_file = tmp_path / "summary.json"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "bench", "load", "--state-dir", wan_sites.info.state_dir),
            *("--site", "a", "--devices", "8", "--rate", "40", "--duration", "3"),
            *("--drain", "10", "--workers", "2", "--id-prefix", "wanload", "--on-load-host"),
            *("--json", str(summary_file), "--assert", "loss==0"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = LoadSummary.model_validate_json(summary_file.read_text())
    assert summary.counters.connected == 8
    assert summary.counters.ingested == summary.counters.sent > 8
    # The devices' traffic came in on site a's veth from the load host, not from here.
    assert _rx_bytes(site_ns, "load0") > before + 10_000
