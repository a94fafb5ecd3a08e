"""``python -m backend.sentinel callout|worker``: one Sentinel process (settings from env).

* ``callout`` answers ``$SYS.REQ.USER.AUTH`` from the Auth DB (queue group: run two);
* ``worker [--rules FILE]`` moves ingress to ``MQTT_ALERTS`` through the inspection pipeline
  (rules: ``FILE``, else ``AURORA_SENTINEL_RULES``, else the shipped defaults); run one per
  ``AURORA_SENTINEL_WORKER_INDEX`` of ``..._WORKER_COUNT`` to scale out;
* ``wsbridge`` carries origin alerts over WebSocket through the WAF limits (seed's bridge).

SIGTERM and Ctrl-C stop it cleanly; a missing setting or dependency ends it with one line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import nats
import redis.asyncio as aioredis
from nats.aio.client import Client
from nats.errors import Error as NatsError
from prometheus_client import start_http_server

from backend.logs import configure_logging
from backend.sentinel.audit import Auditor, AuthMetrics
from backend.sentinel.authcache import Verified, VerifiedCache, cache_key
from backend.sentinel.authdb import AuthDb
from backend.sentinel.callout import CalloutHandler, serve
from backend.sentinel.errors import SentinelError
from backend.sentinel.inspection import RulesError, load_rules
from backend.sentinel.inspection.rules import DEFAULT_RULES_PATH
from backend.sentinel.naming import CALLOUT_QUEUE, CALLOUT_SUBJECT, CALLOUT_VERIFIED_SUBJECT
from backend.sentinel.settings import SentinelSettings
from backend.sentinel.shards import feed_user
from backend.sentinel.worker import IngressWorker, WorkerMetrics, ensure_feeds, ensure_streams
from backend.store.db import utcnow

log = logging.getLogger("backend.sentinel")


async def connect(settings: SentinelSettings, name: str, user: str | None = None) -> Client:
    """A NATS connection to every node (TLS, the service user or ``user`` with the same
    password), reconnecting forever."""

    async def on_error(error: Exception) -> None:
        log.warning("nats: %s", error)

    async def on_disconnect() -> None:
        log.warning("nats: disconnected")

    async def on_reconnect() -> None:
        log.info("nats: reconnected to %s", nc.connected_url)

    nc: Client = await nats.connect(
        servers=settings.nats_urls,
        tls=settings.tls_context(),
        tls_hostname="127.0.0.1",
        user=settings.user if user is None else user,
        password=settings.password.get_secret_value(),
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=5,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
    )
    return nc


async def run_callout(settings: SentinelSettings, stop: asyncio.Event) -> None:
    """The callout service until ``stop``."""
    authdb = AuthDb.open(settings.database_url)
    await authdb.start()
    redis = aioredis.from_url(settings.redis_url)
    metrics = AuthMetrics()
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr="127.0.0.1", registry=metrics.registry)
        log.info("metrics on http://127.0.0.1:%d/metrics", settings.metrics_port)
    issuer_seed = settings.issuer_seed.get_secret_value()
    cache = VerifiedCache(
        cache_key(issuer_seed), settings.auth_cache_ttl_s, instance=settings.instance
    )
    nc = await connect(settings, settings.instance)

    async def share(entry: Verified) -> None:
        await nc.publish(CALLOUT_VERIFIED_SUBJECT, entry.to_bytes())

    async def on_peer(message: Any) -> None:
        try:
            cache.accept(Verified.from_bytes(message.data))
        except SentinelError as error:
            log.warning("peer message ignored: %s", error)

    handler = CalloutHandler(
        issuer_seed=issuer_seed,
        shards=settings.client_shards,
        lookup=authdb.get,
        cache=cache,
        share=share,
        instance=settings.instance,
    )
    try:
        await nc.subscribe(CALLOUT_VERIFIED_SUBJECT, cb=on_peer)

        async def subscribe(callback: Any) -> object:
            subscription = await nc.subscribe(CALLOUT_SUBJECT, queue=CALLOUT_QUEUE, cb=callback)
            await nc.flush()
            log.info("callout %s ready on %s", settings.instance, CALLOUT_SUBJECT)
            settings.mark_ready()
            return subscription

        async with asyncio.TaskGroup() as tasks:
            poller = tasks.create_task(
                forget_changed(authdb, cache, settings.auth_revoke_poll_s, stop)
            )
            await serve(
                handler,
                auditor=Auditor(redis, metrics),
                subscribe=subscribe,
                publish=nc.publish,
                concurrency=settings.callout_concurrency,
                stop=stop,
            )
            poller.cancel()
    finally:
        with contextlib.suppress(Exception):
            await nc.drain()
        await redis.aclose()
        await authdb.aclose()


#: Each Auth DB poll looks this far before the previous one began, so a change committed
#: while a poll ran, or stamped by a writer whose clock lags a little, is not missed.
#: Forgetting a credential twice only costs one more KDF check.
POLL_OVERLAP = timedelta(seconds=2)


async def forget_changed(
    authdb: AuthDb, cache: VerifiedCache, every_s: float, stop: asyncio.Event
) -> None:
    """Drop cached credentials of Auth DB rows that changed (disabled, new password)."""
    previous = utcnow()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(every_s):
                await stop.wait()
        began = utcnow()
        try:
            changed = await authdb.changed_since(previous - POLL_OVERLAP)
        except Exception as error:  # DB away: entries still expire after their TTL
            log.warning("Auth DB poll failed (cached credentials expire by TTL): %s", error)
            continue
        previous = began
        dropped = cache.forget(changed)
        if dropped:
            log.info("dropped %d cached credential(s) of changed clients", dropped)


async def run_worker(
    settings: SentinelSettings, stop: asyncio.Event, *, pass_through: bool = False
) -> None:
    """The ingress worker with the inspection pipeline until ``stop``.

    ``pass_through`` runs it without inspection (delivers everything, reports nothing): the
    baseline the figures compare the pipeline with.
    """
    from backend.sentinel.feeds import Feeds
    from backend.sentinel.inspection_service import InspectionService
    from backend.sentinel.partitions import owned, partition_queue, partition_subject
    from backend.sentinel.reporting import AlertRaiser, Reporter

    partitions = owned(settings.worker_index, settings.worker_count)
    inspector = InspectionService.load(settings.rules)
    log.info(
        "worker %s: rules %s, partitions %s",
        settings.instance,
        settings.rules or "(shipped defaults)",
        ",".join(map(str, partitions)),
    )
    metrics = WorkerMetrics()
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr="127.0.0.1", registry=metrics.registry)
    redis = aioredis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2)
    authdb = AuthDb.open(settings.database_url)
    await authdb.start()
    alerts = None
    if settings.api_url:
        alerts = AlertRaiser(settings.api_url, settings.api_token.get_secret_value())
    reporter = Reporter(
        redis,
        worker=settings.instance,
        alerts=alerts,
        alert_min_severity=settings.alert_min_severity,
    )
    service = InspectionService(inspector, reporter, metrics)
    service.feeds = Feeds(
        inspector,
        authdb,
        redis,
        service.report_events,
        # Auth decisions concern connects, not partitions: one worker judges them.
        observe_auth=0 in partitions,
    )
    await service.feeds.start()
    nc = await connect(settings, settings.instance)
    # One connection per client shard account: the QoS 1 copies are stored there.
    feeds: list[Client] = []
    try:
        for index in range(settings.client_shards):
            feeds.append(
                await connect(settings, f"{settings.instance}-feed-{index}", feed_user(index))
            )
        js = nc.jetstream(timeout=5.0)
        # A fresh cluster elects its JetStream meta leader for a few seconds: keep trying.
        while True:
            try:
                await ensure_streams(js)
                await ensure_feeds([feed.jetstream(timeout=5.0) for feed in feeds])
                break
            except NatsError as error:
                log.info("streams not ready yet (%s); retrying", error)
                await asyncio.sleep(0.5)
        if pass_through:
            log.warning("worker %s runs WITHOUT inspection (--pass-through)", settings.instance)
            plain = IngressWorker(
                nc,
                feeds=feeds,
                batch=settings.worker_batch,
                retry_budget_s=settings.publish_retry_s,
                metrics=metrics,
                subscriptions=[(partition_subject(p), partition_queue(p)) for p in partitions],
            )
            await plain.run(stop, settings.mark_ready)
            return
        worker = IngressWorker(
            nc,
            (service.stage,),
            feeds=feeds,
            batch=settings.worker_batch,
            retry_budget_s=settings.publish_retry_s,
            metrics=metrics,
            subscriptions=[(partition_subject(p), partition_queue(p)) for p in partitions],
            prepare=service.prepare,
            admit=service.admit,
            report=service.report,
        )

        def ready() -> None:
            log.info("worker %s ready", settings.instance)
            settings.mark_ready()

        async with asyncio.TaskGroup() as tasks:
            background = [tasks.create_task(service.run())]
            if alerts is not None:
                background.append(tasks.create_task(alerts.run()))
            await worker.run(stop, ready)
            for task in background:
                task.cancel()
    finally:
        for connection in (nc, *feeds):
            with contextlib.suppress(Exception):
                await connection.drain()
        await service.reporter.aclose()
        await authdb.aclose()


async def run_wsbridge(settings: SentinelSettings, stop: asyncio.Event) -> None:
    """The WebSocket bridge until ``stop``."""
    from urllib.parse import urlsplit

    from backend.sentinel.wsbridge import BridgeMetrics, Endpoint, Waf, run_bridge

    metrics = BridgeMetrics()
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr="127.0.0.1", registry=metrics.registry)
    origin_tls = settings.tls_context()
    if settings.origin_cert and settings.origin_key:
        origin_tls.load_cert_chain(str(settings.origin_cert), str(settings.origin_key))
    origin = Endpoint(settings.origin_host, settings.origin_port, origin_tls)
    targets = []
    for url in settings.websocket_urls:
        parts = urlsplit(url)
        targets.append(
            Endpoint(
                parts.hostname or "127.0.0.1",
                parts.port or 443,
                settings.tls_context(),
                username=settings.user,
                password=settings.password.get_secret_value(),
                websocket=True,
            )
        )
    waf = Waf(settings.waf_max_message_bytes, settings.waf_rate_per_s, settings.waf_burst)
    ready = asyncio.Event()

    async def mark_ready() -> None:
        await ready.wait()
        settings.mark_ready()

    async with asyncio.TaskGroup() as tasks:
        bridge = tasks.create_task(
            run_bridge(origin, targets, waf=waf, metrics=metrics, stop=stop, ready=ready)
        )
        marker = tasks.create_task(mark_ready())
        await stop.wait()
        bridge.cancel()
        marker.cancel()


async def main(role: str, rules: Path | None = None, *, pass_through: bool = False) -> None:
    """Run ``role`` until SIGTERM/SIGINT."""
    settings = SentinelSettings()
    if rules is not None:
        settings = settings.model_copy(update={"rules": rules})
    configure_logging(settings.site_id, settings.log_level, settings.log_format)
    if settings.rules is not None or role == "worker":
        # A broken rules file is one clear error before anything connects.
        load_rules(settings.rules or DEFAULT_RULES_PATH)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if role == "worker":
        await run_worker(settings, stop, pass_through=pass_through)
        return
    runner = {"callout": run_callout, "wsbridge": run_wsbridge}[role]
    await runner(settings, stop)


ROLES = ("callout", "worker", "wsbridge")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """``ROLE [--rules FILE]`` (``--rules`` for the worker: the inspection rules)."""
    parser = argparse.ArgumentParser(prog="python -m backend.sentinel")
    parser.add_argument("role", choices=ROLES)
    parser.add_argument(
        "--rules",
        type=Path,
        default=None,
        help="inspection rules file (worker; default: backend/sentinel/inspection/"
        "default_rules.yaml or AURORA_SENTINEL_RULES)",
    )
    parser.add_argument(
        "--pass-through",
        action="store_true",
        help="worker without inspection (delivers everything): a baseline for figures",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args(sys.argv[1:])
    try:
        asyncio.run(main(args.role, args.rules, pass_through=args.pass_through))
    except KeyboardInterrupt:
        pass
    except RulesError as error:
        sys.exit(f"sentinel {args.role}: the rules file is broken:\n{error}")
    except Exception as error:
        sys.exit(f"sentinel {args.role}: {error}")
