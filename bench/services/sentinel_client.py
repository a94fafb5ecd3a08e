"""Clients of a running Sentinel: the readiness check, NATS and MQTT connections as a client.

Used by the cluster start, the ``aurora-bench sentinel`` commands, the tests and the perf
figures, so all of them speak to the cluster the same way (TLS 1.3, the bench CA).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiomqtt
import nats
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import APIError, ServiceUnavailableError

from backend.sentinel.naming import STREAM
from backend.sentinel.worker import ensure_feeds, ensure_streams


def tls_context(ca: Path | str) -> ssl.SSLContext:
    """A client TLS 1.3 context trusting the bench CA."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


async def nats_connect(
    urls: list[str] | str,
    ca: Path | str,
    user: str,
    password: str,
    *,
    name: str = "aurora-bench",
    reconnect: bool = False,
    timeout_s: float = 5.0,
    **kwargs: Any,
) -> Client:
    """A nats-py connection as ``user`` (no reconnect by default: a refusal is an error)."""

    async def quiet(_error: Exception) -> None:
        return None

    servers = [urls] if isinstance(urls, str) else urls
    client: Client = await nats.connect(
        servers=servers,
        tls=tls_context(ca),
        tls_hostname="127.0.0.1",
        user=user,
        password=password,
        name=name,
        connect_timeout=timeout_s,
        allow_reconnect=reconnect,
        max_reconnect_attempts=-1 if reconnect else 0,
        reconnect_time_wait=0.5,
        error_cb=kwargs.pop("error_cb", quiet),
        **kwargs,
    )
    return client


async def check_cluster(
    urls: list[str],
    ca: Path,
    user: str,
    password: str,
    timeout_s: float,
    *,
    feed_users: Sequence[str] = (),
) -> None:
    """The streams exist (created if needed: the record's as ``user``, each shard's QoS 1
    feed as its ``feed_users`` entry, same password) and every node serves a real client and
    sees them."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            client = await nats_connect(urls, ca, user, password, name="bench-ready")
            try:
                await ensure_streams(client.jetstream(timeout=5.0))
            finally:
                await client.close()
            for feed in feed_users:
                shard = await nats_connect(urls, ca, feed, password, name="bench-ready")
                try:
                    await ensure_feeds([shard.jetstream(timeout=5.0)])
                finally:
                    await shard.close()
            for url in urls:
                one = await nats_connect(url, ca, user, password, name="bench-ready")
                try:
                    js = one.jetstream(timeout=5.0)
                    info = await js.stream_info(STREAM)
                    if info.cluster is None or info.cluster.leader is None:
                        raise RuntimeError(f"stream {STREAM} has no leader yet")
                finally:
                    await one.close()
            return
        except (
            TimeoutError,
            OSError,
            RuntimeError,
            APIError,
            ServiceUnavailableError,
            NoRespondersError,
            NatsTimeout,
            nats.errors.Error,
        ) as error:
            last = error
            await asyncio.sleep(0.5)
    raise RuntimeError(f"not ready within {timeout_s:g} s: {last!r}")


def mqtt_client(
    host: str,
    port: int,
    ca: Path | str,
    username: str,
    password: str,
    *,
    identifier: str | None = None,
    websocket: bool = False,
    clean_session: bool = True,
    timeout_s: float = 10.0,
) -> aiomqtt.Client:
    """An aiomqtt MQTT 3.1.1 client of the Sentinel (NATS MQTT speaks 3.1.1 only)."""
    return aiomqtt.Client(
        host,
        port,
        username=username,
        password=password,
        identifier=identifier,
        protocol=aiomqtt.ProtocolVersion.V311,
        clean_session=clean_session,
        tls_context=tls_context(ca),
        transport="websockets" if websocket else "tcp",
        websocket_path="/mqtt" if websocket else None,
        timeout=timeout_s,
    )
