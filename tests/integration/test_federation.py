"""Two-site federation on real servers (issue 5).

Tier 1 (``mesh``): the bench starts both sites' services (NATS with JetStream domains a/b
and a TLS leafnode, Redis, the database) without backends; each site's AlertService and
FederationService run in this process, so a test can stop a NATS server, restart a
federation service or publish raw mesh messages and look straight into each database.

Tier 2 (``sites``): two complete backends (``python -m backend``) with shrunk thresholds;
alerts go in through ``POST /api/v1/alerts`` and are read back through the REST API.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import nats
import pytest
from sqlalchemy import func, select

from backend.alerts import AlertService
from backend.bus import StreamBus
from backend.contract import Severity
from backend.federation.jetstream import ORIGIN_STREAM, peer_stream_name
from backend.federation.messages import (
    FederatedAlert,
    FederatedAudit,
    IocShare,
    alert_subject,
    encode_message,
)
from backend.federation.service import FederationService
from backend.federation.tables import RemoteAuditRow, SharedIocRow
from backend.metrics import BackendMetrics
from backend.settings import Settings
from backend.store import Alert, Store
from bench.eventually import eventually
from bench.perf.federation import KEEPALIVE_EXPIRY_S
from bench.site import RunningBench

pytestmark = pytest.mark.integration

T = TypeVar("T")

#: Shrunk seed thresholds (15 s / 45 s / 120 s) so a partition is seen within seconds.
FAST = {
    "AURORA_HEARTBEAT_INTERVAL_SECONDS": "0.5",
    "AURORA_LINK_DEGRADED_AFTER_S": "2",
    "AURORA_LINK_DOWN_AFTER_S": "4",
}


# --------------------------------------------------------------------------- tier 1


@dataclass
class Site:
    """One site's backend pieces that federation touches, run in this process."""

    settings: Settings
    store: Store
    bus: StreamBus
    alerts: AlertService
    federation: FederationService

    @classmethod
    async def start(cls, bench: RunningBench, site_id: str) -> Site:
        info = bench.site(site_id)
        settings = Settings(
            site_id=site_id,
            site_name=f"site {site_id}",
            database_url=info.database,
            redis_url=info.redis,
            nats_url=info.nats,
            mqtt_enabled=False,
            federation_enabled=True,
            heartbeat_interval_seconds=0.5,
            link_degraded_after_s=2.0,
            link_down_after_s=4.0,
        )
        store = Store(settings.database_url)
        await store.start()
        bus = StreamBus(settings.redis_url, settings.stream_maxlen)
        alerts = AlertService(site_id, store.sessionmaker, bus, BackendMetrics())
        federation = FederationService(settings, alerts, store.sessionmaker)
        await federation.start()
        return cls(settings, store, bus, alerts, federation)

    async def restart_federation(self) -> None:
        """A backend restart as far as federation goes: a fresh service, same database."""
        await self.federation.aclose()
        self.alerts = AlertService(
            self.settings.site_id, self.store.sessionmaker, self.bus, BackendMetrics()
        )
        self.federation = FederationService(self.settings, self.alerts, self.store.sessionmaker)
        await self.federation.start()

    async def stop(self) -> None:
        await self.federation.aclose()
        await self.alerts.aclose()
        await self.bus.aclose()
        await self.store.aclose()

    async def raise_alert(self, severity: str = "critical", **extra: Any) -> str:
        record = await self.alerts.raise_alert(
            type=extra.pop("type", "c2_beacon"),
            severity=severity,
            title=extra.pop("title", f"{severity} test alert"),
            source="api",
            **extra,
        )
        return record.id

    async def remote_alerts(self, origin: str, ids: list[str]) -> list[Alert]:
        """Rows stored here for alerts ``ids`` of site ``origin``."""
        async with self.store.sessionmaker() as session:
            rows = await session.scalars(
                select(Alert).where(Alert.origin_site == origin, Alert.origin_alert_id.in_(ids))
            )
            return list(rows.all())

    async def link_status(self) -> str | None:
        # the JSON the console's live map gets
        topology = await self.federation.topology_json()
        links = topology["links"]
        return links[0]["status"] if links else None


@pytest.fixture(scope="module")
def services_two(bench_factory: Callable[..., RunningBench]) -> RunningBench:
    """Both sites' servers (NATS leafnode-linked, JetStream domains a and b), no backends."""
    return bench_factory(["a", "b"], backend=False)


@pytest.fixture(scope="module")
async def mesh(services_two: RunningBench) -> AsyncIterator[dict[str, Site]]:
    sites = {site_id: await Site.start(services_two, site_id) for site_id in ("a", "b")}
    try:
        # Both consumers exist once each side has heard the other's gossip.
        for here, peer in (("a", "b"), ("b", "a")):
            await eventually(
                lambda h=here, p=peer: _consuming(sites[h], p), f"{here} consuming {peer}"
            )
        yield sites
    finally:
        for site in sites.values():
            await site.stop()


async def _consuming(site: Site, peer: str) -> bool:
    return bool(site.federation.health().model_dump()["peers"].get(peer, {}).get("consuming"))


async def _arrived(site: Site, origin: str, ids: list[str]) -> list[Alert] | None:
    rows = await site.remote_alerts(origin, ids)
    return rows if len(rows) >= len(ids) else None


async def test_gossip_makes_the_link_healthy(mesh: dict[str, Site]) -> None:
    for here, peer in (("a", "b"), ("b", "a")):
        site = mesh[here]

        async def healthy(site: Site = site) -> dict[str, Any] | None:
            topology = (await site.federation.topology()).model_dump()
            links = [link for link in topology["links"] if link["status"] == "healthy"]
            return topology if links else None

        topology = await eventually(healthy, f"a healthy link seen at {here}")
        assert [link["link_id"] for link in topology["links"]] == ["link-a-b"]
        assert topology["links"][0]["latency_ms"] is not None
        sites = {
            node["site_id"]: node
            for node in (await site.federation.list_sites()).model_dump()["items"]
        }
        assert sites[here]["is_local"] and sites[here]["status"] == "online"
        assert not sites[peer]["is_local"] and sites[peer]["status"] == "online"
        assert sites[peer]["jetstream_domain"] == peer


async def test_critical_alert_reaches_the_peer_with_its_origin(mesh: dict[str, Site]) -> None:
    alert_id = await mesh["b"].raise_alert(
        "critical", device_id="esp32s3-env-01", iocs=["203.0.113.9", {"domain": "C2.Evil.Example"}]
    )
    (row,) = await eventually(lambda: _arrived(mesh["a"], "b", [alert_id]), "the alert at a")
    assert row.source == "federation:b"
    assert row.origin_site == "b"
    assert row.severity == Severity.CRITICAL
    assert row.device_id == "esp32s3-env-01"
    assert row.iocs == [
        {"type": "ip", "value": "203.0.113.9"},
        {"type": "domain", "value": "c2.evil.example"},
    ]
    assert row.details["federation"]["origin_alert_id"] == alert_id
    assert row.dedup_key is not None

    # and the indicators were shared on aurora.ioc_sharing as well
    async def shared() -> list[SharedIocRow] | None:
        async with mesh["a"].store.sessionmaker() as session:
            rows = (await session.scalars(select(SharedIocRow))).all()
        values = {r.value for r in rows if r.origin_site == "b"}
        return list(rows) if {"203.0.113.9", "c2.evil.example"} <= values else None

    await eventually(shared, "b's IOCs in a's shared indicator table")


async def test_a_low_alert_stays_local(mesh: dict[str, Site]) -> None:
    low = await mesh["b"].raise_alert("low")
    high = await mesh["b"].raise_alert("high")
    # The stream delivers in order: once the later high alert is in, a federated low
    # alert would be too.
    await eventually(lambda: _arrived(mesh["a"], "b", [high]), "the high alert at a")
    assert await mesh["a"].remote_alerts("b", [low]) == []


async def _publish_raw(
    bench: RunningBench, site: str, message: FederatedAlert, msg_id: str
) -> None:
    nc = await nats.connect(bench.site(site).nats)
    try:
        await nc.jetstream().publish(
            message.subject, encode_message(message), headers={"Nats-Msg-Id": msg_id}
        )
    finally:
        await nc.close()


def _federated(origin: str, severity: Severity = Severity.CRITICAL) -> FederatedAlert:
    now = datetime.now(UTC)
    return FederatedAlert(
        origin_site=origin,
        origin_alert_id=str(uuid.uuid4()),
        type="c2_beacon",
        severity=severity,
        title="raw federated alert",
        created_at=now,
        federated_at=now,
    )


async def test_a_replayed_message_is_stored_once(
    mesh: dict[str, Site], services_two: RunningBench
) -> None:
    message = _federated("b")
    # Different Nats-Msg-Ids get past the stream's own dedup: the receiver must hold.
    for attempt in range(3):
        await _publish_raw(services_two, "b", message, f"replay-{attempt}-{uuid.uuid4()}")
    sentinel = await mesh["b"].raise_alert("critical")
    await eventually(lambda: _arrived(mesh["a"], "b", [sentinel]), "the sentinel at a")
    rows = await mesh["a"].remote_alerts("b", [message.origin_alert_id])
    assert len(rows) == 1
    assert mesh["a"].federation.counters.duplicates >= 2


async def test_an_echo_of_our_own_alert_is_dropped(
    mesh: dict[str, Site], services_two: RunningBench
) -> None:
    echo = _federated("a")  # claims to come from a, arrives at a through b's stream
    before = mesh["a"].federation.counters.echoes_dropped
    await _publish_raw(services_two, "b", echo, f"echo-{uuid.uuid4()}")
    sentinel = await mesh["b"].raise_alert("critical")
    await eventually(lambda: _arrived(mesh["a"], "b", [sentinel]), "the sentinel at a")
    async with mesh["a"].store.sessionmaker() as session:
        count = await session.scalar(
            select(func.count()).where(Alert.origin_alert_id == echo.origin_alert_id)
        )
    assert count == 0
    assert mesh["a"].federation.counters.echoes_dropped > before


async def test_unreadable_messages_do_not_stop_the_consumer(
    mesh: dict[str, Site], services_two: RunningBench
) -> None:
    nc = await nats.connect(services_two.site("b").nats)
    try:
        js = nc.jetstream()
        await js.publish(alert_subject(Severity.CRITICAL), b"{not json")
        await js.publish(alert_subject(Severity.CRITICAL), json.dumps({"origin_site": 1}).encode())
    finally:
        await nc.close()
    sentinel = await mesh["b"].raise_alert("critical")
    await eventually(lambda: _arrived(mesh["a"], "b", [sentinel]), "the sentinel at a")
    assert mesh["a"].federation.counters.unreadable >= 2


async def test_partition_degrades_then_heals_and_loses_nothing(
    mesh: dict[str, Site], services_two: RunningBench
) -> None:
    a, b = mesh["a"], mesh["b"]
    await eventually(lambda: _status_is(a, "healthy"), "a healthy link before the partition")
    await asyncio.to_thread(services_two.stop_service, "b", "nats")
    try:
        await eventually(lambda: _status_is(a, "degraded"), "a sees the link degraded", 10)
        # Raised on both sides while the link is down (b cannot even reach its own NATS).
        from_b = [await b.raise_alert("critical", title=f"partition b {i}") for i in range(20)]
        from_a = [await a.raise_alert("high", title=f"partition a {i}") for i in range(20)]
        await eventually(lambda: _status_is(a, "down"), "a sees the link down", 10)
        peers = {n["site_id"]: n for n in (await a.federation.list_sites()).model_dump()["items"]}
        assert peers["b"]["status"] == "offline"
        assert await a.remote_alerts("b", from_b) == []
    finally:
        await asyncio.to_thread(services_two.start_service, "b", "nats")
    await eventually(lambda: _status_is(a, "healthy"), "a sees the link healthy again", 30)
    rows_at_a = await eventually(lambda: _arrived(a, "b", from_b), "b's 20 alerts at a", 30)
    rows_at_b = await eventually(lambda: _arrived(b, "a", from_a), "a's 20 alerts at b", 30)
    await _settle(a, b)
    assert sorted(r.origin_alert_id for r in await a.remote_alerts("b", from_b)) == sorted(from_b)
    assert sorted(r.origin_alert_id for r in await b.remote_alerts("a", from_a)) == sorted(from_a)
    assert len(rows_at_a) == len(rows_at_b) == 20
    # The link changes were audited across sites as well.
    async with a.store.sessionmaker() as session:
        events = (
            await session.scalars(select(RemoteAuditRow).where(RemoteAuditRow.origin_site == "b"))
        ).all()
    assert any(event.type == "link_status_changed" for event in events)


async def _status_is(site: Site, status: str) -> bool:
    return await site.link_status() == status


async def _settle(*sites: Site) -> None:
    """Wait until every consumer has caught up (a duplicate would have landed by then)."""
    for site in sites:
        await eventually(
            lambda s=site: _caught_up(s), f"{site.settings.site_id} consumers caught up"
        )


async def _caught_up(site: Site) -> bool:
    nc = await nats.connect(site.settings.nats_url or "")
    try:
        js = nc.jetstream()
        for peer in site.federation.health().model_dump()["peers"]:
            info = await js.consumer_info(
                peer_stream_name(peer), f"federation-{site.settings.site_id}"
            )
            if info.num_pending or info.num_ack_pending:
                return False
        return True
    finally:
        await nc.close()


async def test_restarting_either_side_loses_nothing(mesh: dict[str, Site]) -> None:
    a, b = mesh["a"], mesh["b"]
    # a is "down" while b raises alerts: its durable consumer resumes after the restart.
    await a.federation.aclose()
    while_a_away = [await b.raise_alert("critical", title=f"a away {i}") for i in range(10)]
    await a.restart_federation()
    await eventually(lambda: _arrived(a, "b", while_a_away), "alerts raised while a was away")

    # b crashes with alerts still queued (its NATS link is cut first so they cannot leave):
    # the restarted service offers its recent alerts again; the stream drops the copies
    # it already had, a's dedup key the rest.
    await b.federation.aclose()
    lost_queue = [await b.raise_alert("critical", title=f"b queue {i}") for i in range(5)]
    await b.restart_federation()
    await eventually(lambda: _arrived(a, "b", lost_queue), "alerts b had not yet published")
    await _settle(a, b)
    for ids in (while_a_away, lost_queue):
        assert len(await a.remote_alerts("b", ids)) == len(ids)


async def test_a_site_starts_while_its_nats_is_down(
    mesh: dict[str, Site], services_two: RunningBench
) -> None:
    b = mesh["b"]
    await asyncio.to_thread(services_two.stop_service, "b", "nats")
    try:
        async with asyncio.timeout(5):  # start() must not wait for the mesh
            await b.restart_federation()
        health = await eventually(
            lambda: _health_if(b, lambda h: h["last_error"] is not None), "b reporting its error"
        )
        assert health["nats_connected"] is False
        assert services_two.site("b").nats.removeprefix("nats://") in health["last_error"]
        queued = await b.raise_alert("critical", title="raised before NATS came up")
    finally:
        await asyncio.to_thread(services_two.start_service, "b", "nats")
    await eventually(lambda: _health_if(b, lambda h: h["jetstream_ready"]), "b connected", 30)
    await eventually(lambda: _arrived(mesh["a"], "b", [queued]), "the queued alert at a", 30)


async def _health_if(site: Site, test: Callable[[dict[str, Any]], Any]) -> dict[str, Any] | None:
    health = site.federation.health().model_dump()
    return health if test(health) else None


async def test_a_redis_outage_at_the_receiver_loses_nothing(
    mesh: dict[str, Site], services_two: RunningBench
) -> None:
    a, b = mesh["a"], mesh["b"]
    # ingest_remote writes the row, then appends to Redis: that append fails here, the
    # message is nak'ed, and its redelivery is acked as a duplicate. The consumer goes on.
    await asyncio.to_thread(services_two.stop_service, "a", "redis")
    try:
        during = await b.raise_alert("critical", title="while a's redis is down")
        await eventually(lambda: _arrived(a, "b", [during]), "the alert in a's database")
    finally:
        await asyncio.to_thread(services_two.start_service, "a", "redis")
    after = await b.raise_alert("critical", title="after a's redis is back")
    await eventually(lambda: _arrived(a, "b", [after]), "the next alert at a")
    await _settle(a)
    assert len(await a.remote_alerts("b", [during, after])) == 2


async def test_streams_are_created_idempotently(mesh: dict[str, Site]) -> None:
    nc = await nats.connect(mesh["a"].settings.nats_url or "")
    try:
        js = nc.jetstream()
        names = {info.config.name for info in await js.streams_info()}
        assert {ORIGIN_STREAM, peer_stream_name("b")} <= names
        sourced = await js.stream_info(peer_stream_name("b"))
        assert sourced.config.sources is not None
        assert sourced.config.sources[0].external is not None
        assert sourced.config.sources[0].external.api == "$JS.b.API"
    finally:
        await nc.close()
    # restarting a (above, and here again) found everything in place without errors
    await mesh["a"].restart_federation()
    await eventually(lambda: _consuming(mesh["a"], "b"), "a consuming b after restart")
    assert mesh["a"].federation.last_error is None


async def test_audit_events_are_carried(mesh: dict[str, Site], services_two: RunningBench) -> None:
    event = FederatedAudit(
        origin_site="b", event_id=str(uuid.uuid4()), type="operator_lockdown", at=datetime.now(UTC)
    )
    share = IocShare(
        origin_site="b", share_id=str(uuid.uuid4()), iocs=["198.51.100.77"], shared_at=event.at
    )
    nc = await nats.connect(services_two.site("b").nats)
    try:
        js = nc.jetstream()
        for message in (event, event, share):
            await js.publish(message.subject, encode_message(message))
    finally:
        await nc.close()

    async def stored() -> bool:
        async with mesh["a"].store.sessionmaker() as session:
            audit = await session.scalar(
                select(func.count()).where(RemoteAuditRow.event_id == event.event_id)
            )
            ioc = await session.scalar(
                select(func.count()).where(SharedIocRow.value == "198.51.100.77")
            )
        return audit == 1 and ioc == 1

    await eventually(stored, "the audit event and the shared IOC at a (once each)")


# --------------------------------------------------------------------------- tier 2


@pytest.fixture(scope="module")
def sites(bench_factory: Callable[..., RunningBench]) -> RunningBench:
    """Two complete sites (backends included) with shrunk federation thresholds."""
    return bench_factory(["a", "b"], site_env={"a": dict(FAST), "b": dict(FAST)})


def _http(bench: RunningBench) -> httpx.AsyncClient:
    """A client that drops idle connections before uvicorn's 5 s keep-alive close: a
    connection left idle while the other site restarts would otherwise be reused just as
    the server closes it ("Server disconnected without sending a response").

    It carries the bench's operator token, which every site of the bench accepts (one
    issuer)."""
    return httpx.AsyncClient(
        timeout=10,
        limits=httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY_S),
        headers=bench.site("a").api_headers(),
    )


async def _api_alerts(client: httpx.AsyncClient, base: str) -> list[dict[str, Any]]:
    response = await client.get(f"{base}/api/v1/alerts", params={"limit": 1000})
    response.raise_for_status()
    body = response.json()
    items: list[dict[str, Any]] = body["items"] if isinstance(body, dict) else body
    return items


async def test_backends_federate_through_the_rest_api(sites: RunningBench) -> None:
    a_api, b_api = sites.site("a").api, sites.site("b").api
    async with _http(sites) as client:

        async def link_healthy() -> bool:
            response = await client.get(f"{a_api}/api/v1/system/topology")
            links = response.json()["links"] if response.status_code == 200 else []
            return any(link["status"] == "healthy" for link in links)

        await eventually(link_healthy, "a healthy link between the backends", 30)
        created = await client.post(
            f"{b_api}/api/v1/alerts",
            json={
                "type": "c2_beacon",
                "severity": "critical",
                "title": "C2 beacon from the lab",
                "iocs": ["203.0.113.50"],
            },
        )
        assert created.status_code in (200, 201), created.text
        alert_id = created.json()["id"]
        low = await client.post(
            f"{b_api}/api/v1/alerts",
            json={"type": "port_scan", "severity": "low", "title": "noise"},
        )
        assert low.status_code in (200, 201), low.text

        async def at_a() -> dict[str, Any] | None:
            items = await _api_alerts(client, a_api)
            return next((i for i in items if i.get("origin_alert_id") == alert_id), None)

        seen = await eventually(at_a, "b's critical alert in a's queue", 30)
        assert seen["origin_site"] == "b"
        assert seen["source"] == "federation:b"
        assert all(
            i.get("origin_alert_id") != low.json()["id"] for i in await _api_alerts(client, a_api)
        )

        sites_at_a = (await client.get(f"{a_api}/api/v1/sites")).json()
        assert {item["site_id"] for item in sites_at_a["items"]} == {"a", "b"}


async def _post_alert(
    client: httpx.AsyncClient, api: str, severity: str = "critical", title: str = "probe"
) -> str:
    response = await client.post(
        f"{api}/api/v1/alerts", json={"type": "c2_beacon", "severity": severity, "title": title}
    )
    assert response.status_code == 201, response.text
    alert_id: str = response.json()["id"]
    return alert_id


async def _federated_from(client: httpx.AsyncClient, api: str, origin: str) -> list[str]:
    response = await client.get(
        f"{api}/api/v1/alerts", params={"source": f"federation:{origin}", "limit": 1000}
    )
    response.raise_for_status()
    return [item["origin_alert_id"] for item in response.json()["items"]]


async def _api_link_status(client: httpx.AsyncClient, api: str) -> str | None:
    try:
        response = await client.get(f"{api}/api/v1/system/topology")
    except httpx.HTTPError:
        return None
    links = response.json()["links"] if response.status_code == 200 else []
    return links[0]["status"] if links else None


async def _all_arrive_once(
    client: httpx.AsyncClient, api: str, origin: str, ids: list[str], what: str
) -> None:
    async def arrived() -> bool:
        got = await _federated_from(client, api, origin)
        return set(ids) <= set(got)

    await eventually(arrived, what, 45)
    got = await _federated_from(client, api, origin)
    assert sorted(i for i in got if i in set(ids)) == sorted(ids), "an alert arrived twice"


async def test_backends_survive_a_partition(sites: RunningBench) -> None:
    a_api, b_api = sites.site("a").api, sites.site("b").api
    async with _http(sites) as client:

        async def status(wanted: str) -> bool:
            return await _api_link_status(client, a_api) == wanted

        await eventually(lambda: status("healthy"), "a healthy link", 30)
        await asyncio.to_thread(sites.stop_service, "b", "nats")
        try:
            await eventually(lambda: status("degraded"), "a sees the link degraded", 10)
            from_b = [await _post_alert(client, b_api, title=f"cut b {i}") for i in range(20)]
            from_a = [await _post_alert(client, a_api, "high", f"cut a {i}") for i in range(20)]
            await eventually(lambda: status("down"), "a sees the link down", 10)
            assert not set(from_b) & set(await _federated_from(client, a_api, "b"))
        finally:
            await asyncio.to_thread(sites.start_service, "b", "nats")
        await eventually(lambda: status("healthy"), "a sees the link healthy again", 30)
        await _all_arrive_once(client, a_api, "b", from_b, "b's 20 alerts at a")
        await _all_arrive_once(client, b_api, "a", from_a, "a's 20 alerts at b")


async def test_restarting_either_backend_loses_nothing(sites: RunningBench) -> None:
    a_api, b_api = sites.site("a").api, sites.site("b").api
    async with _http(sites) as client:
        # a crashes; b raises alerts meanwhile; a's durable consumer resumes after restart.
        await asyncio.to_thread(sites.stop_backend, "a", kill=True)
        try:
            while_a_down = [
                await _post_alert(client, b_api, title=f"a down {i}") for i in range(10)
            ]
        finally:
            await asyncio.to_thread(sites.start_backend, "a")
        await _all_arrive_once(client, a_api, "b", while_a_down, "alerts raised while a was down")

        # b crashes right after raising alerts (some may not have left its queue yet).
        just_before = [await _post_alert(client, b_api, title=f"b crash {i}") for i in range(10)]
        await asyncio.to_thread(sites.stop_backend, "b", kill=True)
        await asyncio.to_thread(sites.start_backend, "b")
        await _all_arrive_once(client, a_api, "b", just_before, "alerts b raised before crashing")


async def test_propagation_measurement_runs(sites: RunningBench) -> None:
    from bench.perf.federation import propagation_samples_ms

    samples, lost = await propagation_samples_ms(sites.info, "b", "a", alerts=20, warmup=2)
    assert lost == 0
    assert len(samples) == 20
    assert all(0 < sample < 5000 for sample in samples)


async def test_sites_find_each_other_without_waiting_a_heartbeat(
    bench_factory: Callable[..., RunningBench],
) -> None:
    # Default timing (15 s heartbeat): discovery must not wait for the second heartbeat.
    fresh = bench_factory(["a", "b"])
    a_api, b_api = fresh.site("a").api, fresh.site("b").api
    async with _http(fresh) as client:
        alert_id = await _post_alert(client, b_api, title="right after start")

        async def arrived() -> bool:
            return alert_id in await _federated_from(client, a_api, "b")

        await eventually(arrived, "b's first alert at a, well within one heartbeat", 7.5)
