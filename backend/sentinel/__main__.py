"""``python -m backend.sentinel callout|worker``: one Sentinel process (settings from env).

* ``callout`` answers ``$SYS.REQ.USER.AUTH`` from the Auth DB (queue group: run two);
* ``worker`` moves ingress to ``MQTT_ALERTS`` through the inspection stages (scale out);
* ``wsbridge`` carries origin alerts over WebSocket through the WAF limits (seed's bridge).

SIGTERM and Ctrl-C stop it cleanly; a missing setting or dependency ends it with one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from datetime import timedelta
from typing import Any

import nats
import redis.asyncio as aioredis
from nats.aio.client import Client
from nats.errors import Error as NatsError
from prometheus_client import start_http_server

from backend.sentinel.audit import Auditor, AuthMetrics
from backend.sentinel.authcache import Verified, VerifiedCache, cache_key
from backend.sentinel.authdb import AuthDb
from backend.sentinel.callout import CalloutHandler, serve
from backend.sentinel.errors import SentinelError
from backend.sentinel.naming import CALLOUT_QUEUE, CALLOUT_SUBJECT, CALLOUT_VERIFIED_SUBJECT
from backend.sentinel.settings import SentinelSettings
from backend.sentinel.worker import IngressWorker, WorkerMetrics, ensure_streams
from backend.store.db import utcnow

log = logging.getLogger("backend.sentinel")


async def connect(settings: SentinelSettings, name: str) -> Client:
    """A NATS connection to every node (TLS, service user), reconnecting forever."""

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
        user=settings.user,
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
        account=settings.client_account,
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


async def run_worker(settings: SentinelSettings, stop: asyncio.Event) -> None:
    """The ingress worker until ``stop``."""
    metrics = WorkerMetrics()
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr="127.0.0.1", registry=metrics.registry)
    nc = await connect(settings, settings.instance)
    try:
        js = nc.jetstream(timeout=5.0)
        # A fresh cluster elects its JetStream meta leader for a few seconds: keep trying.
        while True:
            try:
                await ensure_streams(js)
                break
            except NatsError as error:
                log.info("streams not ready yet (%s); retrying", error)
                await asyncio.sleep(0.5)
        worker = IngressWorker(
            nc,
            batch=settings.worker_batch,
            retry_budget_s=settings.publish_retry_s,
            metrics=metrics,
        )

        def ready() -> None:
            log.info("worker %s ready", settings.instance)
            settings.mark_ready()

        await worker.run(stop, ready)
    finally:
        with contextlib.suppress(Exception):
            await nc.drain()


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


async def main(role: str) -> None:
    """Run ``role`` until SIGTERM/SIGINT."""
    settings = SentinelSettings()
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stdout,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = {"callout": run_callout, "worker": run_worker, "wsbridge": run_wsbridge}[role]
    await runner(settings, stop)


if __name__ == "__main__":
    ROLES = ("callout", "worker", "wsbridge")
    if len(sys.argv) != 2 or sys.argv[1] not in ROLES:
        sys.exit(f"usage: python -m backend.sentinel {'|'.join(ROLES)}")
    try:
        asyncio.run(main(sys.argv[1]))
    except KeyboardInterrupt:
        pass
    except Exception as error:
        sys.exit(f"sentinel {sys.argv[1]}: {error}")
