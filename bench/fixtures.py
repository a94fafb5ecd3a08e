"""pytest fixtures that start real benches, and MQTT client helpers for tests.

Loaded by the aurora-bench pytest plugin, so every test suite has them:

* ``bench_one`` — session-scoped :class:`~bench.site.RunningBench`, site ``a``, started on
  first use in a temp state dir;
* ``bench_two`` — sites ``a`` and ``b``, federated over a TLS leafnode;
* ``bench_factory`` — ``bench_factory(sites=[...], site_env={...}, backend=False)`` starts a
  further bench (e.g. with shrunk timing settings); all are stopped at session end;
* ``pki`` — the PKI of ``bench_one``.

The database comes from ``AURORA_TEST_DB`` (``sqlite`` default, ``postgres`` for
``make test-postgres``).

Helpers (plain functions): :func:`tls_context`, :func:`device_client`,
:func:`probe_client` (aiomqtt, MQTT v5, mTLS with the device's own cert) and
:func:`publish_reason_code` (the MQTT layer; the PUBACK reason code aiomqtt does not expose).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import ssl
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from backend.mqtt import ConnectFailed, ConnectOptions, MqttClient, MqttError, client_tls_context
from bench.errors import BenchError
from bench.pki import CertPair, Pki
from bench.site import DATABASES, BenchOptions, RunningBench, start_bench
from bench.wan.conditions import LinkConditions

TEST_DB_ENV = "AURORA_TEST_DB"

__all__ = [
    "bench_factory",
    "bench_one",
    "bench_two",
    "device_client",
    "pki",
    "probe_client",
    "publish_reason_code",
    "tls_context",
]


def database_for_tests() -> str:
    """``sqlite`` or ``postgres``, from ``AURORA_TEST_DB``."""
    value = os.environ.get(TEST_DB_ENV, "sqlite").strip().lower() or "sqlite"
    if value not in DATABASES:
        raise BenchError(f"{TEST_DB_ENV}={value!r}: use sqlite or postgres")
    return value


class BenchFactory:
    """Starts benches in fresh temp state dirs and stops them all at :meth:`close`."""

    def __init__(self, base: Path) -> None:
        self._base = base
        self._benches: list[RunningBench] = []
        self._lock = threading.Lock()

    def __call__(
        self,
        sites: list[str] | None = None,
        *,
        site_env: dict[str, dict[str, str]] | None = None,
        backend: bool = True,
        db: str | None = None,
        sentinel: bool = False,
        sentinel_bridge: str = "mqtt",
        sentinel_workers: int = 1,
        sentinel_rules: Path | None = None,
        wan: LinkConditions | None = None,
    ) -> RunningBench:
        """Start a bench (services + backends unless ``backend=False``; the Sentinel
        cluster with ``sentinel=True``) and track it."""
        state_dir = Path(tempfile.mkdtemp(prefix="bench-", dir=self._base))
        bench = start_bench(
            BenchOptions(
                sites=list(sites or ["a"]),
                state_dir=state_dir,
                db=db or database_for_tests(),
                site_env=dict(site_env or {}),
                backend=backend,
                sentinel=sentinel,
                sentinel_bridge=sentinel_bridge,
                sentinel_workers=sentinel_workers,
                sentinel_rules=sentinel_rules,
                wan=wan,
            )
        )
        with self._lock:
            self._benches.append(bench)
        return bench

    def close(self) -> None:
        """Stop every bench this factory started (newest first)."""
        with self._lock:
            benches, self._benches = self._benches, []
        errors: list[Exception] = []
        for bench in reversed(benches):
            try:
                bench.close()
            except Exception as error:
                errors.append(error)
        if errors:
            raise errors[0]


@pytest.fixture(scope="session")
def bench_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BenchFactory]:
    """Start extra benches: ``bench_factory(["a"], site_env={"a": {...}})``."""
    factory = BenchFactory(tmp_path_factory.mktemp("benches"))
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="session")
def bench_one(bench_factory: BenchFactory) -> RunningBench:
    """One complete site ``a`` (services and backend), shared by the whole session."""
    return bench_factory(["a"])


@pytest.fixture(scope="session")
def bench_two(bench_factory: BenchFactory) -> RunningBench:
    """Sites ``a`` and ``b``, NATS leafnode between them, federation enabled."""
    return bench_factory(["a", "b"])


@pytest.fixture(scope="session")
def pki(bench_one: RunningBench) -> Pki:
    """The PKI (CA, device certs) of ``bench_one``."""
    return bench_one.pki


# -- MQTT helpers ------------------------------------------------------------------------


def tls_context(ca: Path, pair: CertPair | None) -> ssl.SSLContext:
    """A client TLS context trusting ``ca`` and presenting ``pair`` (None: no client cert);
    built by the project's one builder (TLS 1.3 minimum)."""
    if pair is None:
        return client_tls_context(ca)
    return client_tls_context(ca, pair.cert, pair.key)


def device_client(
    bench: RunningBench,
    device_id: str,
    site: str = "a",
    *,
    variant: str | None = None,
    **kwargs: Any,
) -> aiomqtt.Client:
    """An aiomqtt client (MQTT v5, mTLS) for ``device_id`` with its own certificate.

    ``variant`` (``expired``, ``not_yet_valid``, ``wrong_ca``) presents a broken
    certificate instead; further keyword arguments go to :class:`aiomqtt.Client`.
    Use as ``async with device_client(bench_one, "esp32s3-env-01") as client: ...``.
    """
    pki = bench.pki
    pair = pki.device(device_id) if variant is None else pki.device_variant(device_id, variant)
    kwargs.setdefault("identifier", device_id)
    return _client(bench, site, pair, **kwargs)


def probe_client(bench: RunningBench, site: str = "a", **kwargs: Any) -> aiomqtt.Client:
    """An aiomqtt client with the ``bench-probe`` identity: reads ``#``, writes ``aurora/#``."""
    kwargs.setdefault("identifier", f"bench-probe-{os.getpid()}-{next(_PROBE_NUMBERS)}")
    return _client(bench, site, bench.probe_cert(), **kwargs)


_PROBE_NUMBERS = itertools.count(1)


def _client(bench: RunningBench, site: str, pair: CertPair, **kwargs: Any) -> aiomqtt.Client:
    endpoint = bench.site(site).mqtt
    kwargs.setdefault("protocol", aiomqtt.ProtocolVersion.V5)
    return aiomqtt.Client(
        endpoint.host,
        endpoint.port,
        tls_context=tls_context(bench.pki.ca_cert, pair),
        **kwargs,
    )


def publish_reason_code(
    bench: RunningBench,
    pair: CertPair,
    topic: str,
    payload: bytes | str,
    site: str = "a",
    *,
    client_id: str | None = None,
    timeout_s: float = 10.0,
) -> int:
    """Publish once with MQTT v5 QoS 1 and return the PUBACK reason code.

    0 and 16 ("no matching subscribers") are success, 135 "not authorized" (the
    broker's ACL refused it). Through the project's MQTT layer, which reports PUBACK reason
    codes (aiomqtt does not, DESIGN.md). Blocking: call it through ``asyncio.to_thread``
    from async tests (it runs its own event loop).
    """
    endpoint = bench.site(site).mqtt
    options = ConnectOptions(
        endpoint.host,
        endpoint.port,
        client_id or f"reason-probe-{os.getpid()}-{threading.get_ident()}",
        tls=tls_context(bench.pki.ca_cert, pair),
        timeout_s=timeout_s,
    )

    async def publish_once() -> int:
        try:
            client = await MqttClient.connect(options)
        except ConnectFailed as error:
            raise BenchError(f"broker refused the connection: {error}") from None
        try:
            raw = payload.encode() if isinstance(payload, str) else payload
            return await client.publish(topic, raw, 1, timeout_s=timeout_s)
        except MqttError as error:
            raise BenchError(f"no PUBACK for {topic}: {error}") from None
        finally:
            await client.aclose()

    return asyncio.run(publish_once())
