"""The real servers the bench starts: up, reachable, locked down, stopped without orphans."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import psutil
import pytest
import redis.asyncio as aioredis
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from backend.mqtt import ProtocolViolation
from backend.mqtt import codec as mqtt_codec
from backend.mqtt.reader import PacketReader
from bench.errors import BenchError, ServiceStartError
from bench.fixtures import (
    BenchFactory,
    device_client,
    probe_client,
    publish_reason_code,
    tls_context,
)
from bench.pki import CertPair, Pki
from bench.services.local import PostgresCluster
from bench.services.process import Service, ServiceSpec, find_binary, free_port, tcp_accepts
from bench.site import BenchOptions, RunningBench, start_bench

DEADLINE_S = 15.0


@pytest.fixture(scope="module")
def services_two(bench_factory: BenchFactory) -> RunningBench:
    """Services of two sites, no backends: what this module tests."""
    return bench_factory(["a", "b"], backend=False, db="sqlite")


def _children() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_redis_answers(services_two: RunningBench) -> None:
    client = aioredis.from_url(services_two.site("a").redis)
    try:
        assert await client.ping() is True
        await client.set("bench:test", "1")
        assert await client.get("bench:test") == b"1"
    finally:
        await client.aclose()


async def test_each_site_has_its_own_jetstream_domain(services_two: RunningBench) -> None:
    for site in ("a", "b"):
        connection = await nats.connect(services_two.site(site).nats)
        try:
            info = await connection.jetstream().account_info()
            assert info.domain == site
        finally:
            await connection.close()


async def test_leafnode_carries_messages_from_b_to_a(services_two: RunningBench) -> None:
    hub = await nats.connect(services_two.site("a").nats)
    leaf = await nats.connect(services_two.site("b").nats)
    try:
        subscription = await hub.subscribe("aurora.test")
        await hub.flush()
        # Interest crosses the leafnode asynchronously: publish until it arrives.
        deadline = time.monotonic() + DEADLINE_S
        while True:
            await leaf.publish("aurora.test", b"from-b")
            await leaf.flush()
            try:
                message = await subscription.next_msg(timeout=0.2)
                break
            except nats.errors.TimeoutError:
                assert time.monotonic() < deadline, "nothing crossed the leafnode"
        assert message.data == b"from-b"
    finally:
        await hub.close()
        await leaf.close()


async def test_leaf_port_uses_tls_with_client_certs(services_two: RunningBench) -> None:
    port = services_two.leafnode_port("a")
    assert port is not None
    assert services_two.leafnode_port("b") is None
    conf = (services_two.site_dir("a") / "nats" / "nats.conf").read_text()
    assert "verify: true" in conf
    remote = (services_two.site_dir("b") / "nats" / "nats.conf").read_text()
    assert f"tls://127.0.0.1:{port}" in remote
    assert "nats-leaf-b.crt" in remote


async def test_device_publishes_under_its_own_id(services_two: RunningBench) -> None:
    async with probe_client(services_two) as probe:
        await probe.subscribe("aurora/sensors/+/status", qos=1)
        async with device_client(services_two, "esp32s3-env-01") as device:
            await device.publish("aurora/sensors/esp32s3-env-01/status", b"{}", qos=1)
        async with asyncio.timeout(DEADLINE_S):
            message = await anext(aiter(probe.messages))
        assert str(message.topic) == "aurora/sensors/esp32s3-env-01/status"


async def test_publish_under_another_id_is_refused(services_two: RunningBench) -> None:
    pair = services_two.pki.device("esp32s3-env-02")
    own = await asyncio.to_thread(
        publish_reason_code, services_two, pair, "aurora/sensors/esp32s3-env-02/telemetry", b"{}"
    )
    other = await asyncio.to_thread(
        publish_reason_code, services_two, pair, "aurora/sensors/stm32f401-door-01/telemetry", b"{}"
    )
    assert own in (0, 16)  # success / success with "no matching subscribers"
    assert other == 135  # MQTT v5 "not authorized"


async def test_device_reads_only_its_own_commands(services_two: RunningBench) -> None:
    async with device_client(services_two, "stm32f401-door-07") as door:
        # Subscriptions are checked too (issue #11.2): a filter wider than its own topics
        # is refused at SUBACK, its own command topic is granted.
        refused = await door.subscribe("aurora/access/+/command", qos=1)
        assert [code.is_failure for code in refused] == [True]  # type: ignore[union-attr]
        granted = await door.subscribe("aurora/access/stm32f401-door-07/command", qos=1)
        assert [code.is_failure for code in granted] == [False]  # type: ignore[union-attr]
        async with probe_client(services_two) as probe:
            await probe.publish("aurora/access/stm32f401-door-08/command", b"other", qos=1)
            await probe.publish("aurora/access/stm32f401-door-07/command", b"mine", qos=1)
        async with asyncio.timeout(DEADLINE_S):
            message = await anext(aiter(door.messages))
        # Delivery is in order, so the other door's command would have come first.
        assert str(message.topic) == "aurora/access/stm32f401-door-07/command"
        assert message.payload == b"mine"


def _mqtt_connect(bench: RunningBench, pair: CertPair | None, client_id: str) -> int | None:
    """Send an MQTT v5 CONNECT over TLS on a blocking socket; the CONNACK reason code, or
    None when the broker closed the connection instead.

    A blocking socket shows the broker's verdict at once: TLS 1.3 reports a refused client
    certificate only after the handshake, which MQTT clients turn into a long timeout.
    """
    endpoint = bench.site("a").mqtt
    context = tls_context(bench.pki.ca_cert, pair)
    with (
        socket.create_connection((endpoint.host, endpoint.port), timeout=DEADLINE_S) as raw,
        context.wrap_socket(raw, server_hostname=endpoint.host) as tls,
    ):
        try:
            tls.sendall(mqtt_codec.encode(mqtt_codec.Connect(client_id)))
            reader = PacketReader()
            packets: list[mqtt_codec.Packet] = []
            while not packets:
                chunk = tls.recv(256)
                if not chunk:
                    return None
                packets = reader.feed(chunk)
        except (ssl.SSLError, ConnectionError, ProtocolViolation):
            return None
        answer = packets[0]
        return answer.reason if isinstance(answer, mqtt_codec.ConnAck) else None


def test_client_certificates_decide_who_gets_in(services_two: RunningBench) -> None:
    pki = services_two.pki
    # CONNACK reason 0: accepted.
    assert _mqtt_connect(services_two, pki.device("esp32s3-env-09"), "esp32s3-env-09") == 0
    assert _mqtt_connect(services_two, None, "no-cert") is None
    for variant in ("wrong_ca", "expired", "not_yet_valid", "revoked"):
        pair = pki.device_variant("esp32s3-env-09", variant)
        assert _mqtt_connect(services_two, pair, "esp32s3-env-09") is None, variant


async def test_nats_restart_reuses_ports_and_heals_the_leafnode(
    services_two: RunningBench,
) -> None:
    nats_b = services_two.service("b", "nats")
    port = nats_b.spec.port
    services_two.stop_service("b", "nats")
    assert not tcp_accepts("127.0.0.1", port)
    services_two.start_service("b", "nats")
    assert nats_b.spec.port == port
    await test_leafnode_carries_messages_from_b_to_a(services_two)


async def test_mosquitto_keeps_persistent_sessions_across_restart(
    services_two: RunningBench,
) -> None:
    expiry = Properties(PacketTypes.CONNECT)
    expiry.SessionExpiryInterval = 300
    subscriber: dict[str, object] = {
        "identifier": "persistent-door-11",
        "clean_start": False,
        "properties": expiry,
    }
    async with device_client(services_two, "stm32f401-door-11", **subscriber) as door:
        await door.subscribe("aurora/access/stm32f401-door-11/command", qos=1)
    services_two.stop_service("a", "mosquitto")
    services_two.start_service("a", "mosquitto")
    async with probe_client(services_two) as probe:
        await probe.publish("aurora/access/stm32f401-door-11/command", b"queued", qos=1)
    async with device_client(services_two, "stm32f401-door-11", **subscriber) as door:
        async with asyncio.timeout(DEADLINE_S):
            message = await anext(aiter(door.messages))
        assert message.payload == b"queued"


def test_close_leaves_no_process(bench_factory: BenchFactory) -> None:
    bench = bench_factory(["a", "b"], backend=False, db="sqlite")
    pids = [bench.service(s, n).pid for s in ("a", "b") for n in ("mosquitto", "nats", "redis")]
    assert all(pid is not None and _alive(pid) for pid in pids)
    bench.close()
    bench.close()  # idempotent
    assert not [pid for pid in pids if pid is not None and _alive(pid)]


def test_failed_start_shows_the_log_tail(tmp_path: Path) -> None:
    conf = tmp_path / "broken.conf"
    conf.write_text("listener 1 127.0.0.1\nno_such_option true\n")
    service = Service(
        ServiceSpec(
            name="mosquitto-broken",
            command=[find_binary("mosquitto"), "-c", str(conf)],
            log=tmp_path / "broken.log",
            ready=lambda: False,
            start_timeout_s=10,
        )
    )
    before = _children()
    with pytest.raises(ServiceStartError) as raised:
        service.start()
    assert raised.value.service == "mosquitto-broken"
    assert "no_such_option" in raised.value.log_tail
    assert "last lines of the mosquitto-broken log" in str(raised.value)
    assert not service.running
    assert not {pid for pid in _children() - before if _alive(pid)}


def test_failed_bench_start_stops_what_was_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bench.services.providers

    def broken_mosquitto(site_dir: Path, pki: Pki, site_id: str, port: int, **_: object) -> Service:
        return Service(
            ServiceSpec(
                name=f"mosquitto-{site_id}",
                command=[find_binary("mosquitto"), "-c", "/nonexistent/mosquitto.conf"],
                log=site_dir / "mosquitto.log",
                ready=lambda: False,
                start_timeout_s=10,
            )
        )

    monkeypatch.setattr(bench.services.providers, "mosquitto_service", broken_mosquitto)
    before = _children()
    with pytest.raises(ServiceStartError) as raised:
        start_bench(BenchOptions(sites=["a"], state_dir=tmp_path, backend=False))
    assert raised.value.service == "mosquitto-a"
    # redis and nats were up before mosquitto failed: both must be gone again.
    assert not {pid for pid in _children() - before if _alive(pid)}
    assert not (tmp_path / "bench.json").exists()


def test_missing_binary_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("bench.services.process.EXTRA_BIN_DIRS", ())
    from bench.errors import ToolMissingError

    with pytest.raises(ToolMissingError, match="apt-get install nats-server"):
        find_binary("nats-server")


def test_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        service = Service(
            ServiceSpec(
                name="redis-clash",
                command=[find_binary("redis-server"), "--port", str(port)],
                log=tmp_path / "redis.log",
                ready=lambda: tcp_accepts("127.0.0.1", port),
                port=port,
            )
        )
        with pytest.raises(ServiceStartError, match="already taken"):
            service.start()


@pytest.fixture
def postgres_cluster(tmp_path: Path) -> Iterator[PostgresCluster]:
    cluster = PostgresCluster(tmp_path, free_port())
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.postgres
async def test_postgres_cluster_serves_a_database_per_site(
    postgres_cluster: PostgresCluster,
) -> None:
    import asyncpg

    await asyncio.to_thread(postgres_cluster.start)
    url = postgres_cluster.create_database("aurora_a")
    assert url == f"postgresql+asyncpg://postgres@127.0.0.1:{postgres_cluster.port}/aurora_a"
    # Creating it again (a restarted bench) is fine.
    assert postgres_cluster.create_database("aurora_a") == url
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        assert await connection.fetchval("select current_database()") == "aurora_a"
    finally:
        await connection.close()
    service = postgres_cluster.service
    assert service is not None
    pid = service.pid
    assert pid is not None
    postgres_cluster.stop()
    assert not _alive(pid)


@pytest.mark.docker
def test_docker_provider_starts_a_site(tmp_path: Path) -> None:
    with start_bench(
        BenchOptions(sites=["a"], state_dir=tmp_path, provider="docker", backend=False)
    ) as bench:
        assert tcp_accepts(bench.site("a").mqtt.host, bench.site("a").mqtt.port)


def test_docker_provider_without_engine_is_a_clear_error(tmp_path: Path) -> None:
    from bench.services.docker import docker_engine_available

    if docker_engine_available():
        pytest.skip("a Docker engine answers here")
    with pytest.raises(BenchError, match="no Docker engine answers"):
        start_bench(BenchOptions(sites=["a"], state_dir=tmp_path, provider="docker"))


def test_exit_without_close_stops_servers_gracefully(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = (
        "import sys; from pathlib import Path\n"
        "from bench.site import BenchOptions, start_bench\n"
        "bench = start_bench(BenchOptions(state_dir=Path(sys.argv[1]), backend=False))\n"
        "print(*(bench.service('a', n).pid for n in ('mosquitto', 'nats', 'redis')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    pids = [int(pid) for pid in result.stdout.split()]
    assert len(pids) == 3
    assert not [pid for pid in pids if _alive(pid)]
    # SIGTERM, not mirakuru's last-resort SIGKILL: the servers shut down on their own terms.
    assert "Received SIGTERM" in (tmp_path / "a" / "redis.log").read_text()
    assert "terminating" in (tmp_path / "a" / "mosquitto.log").read_text()


async def test_two_probe_clients_live_side_by_side(services_two: RunningBench) -> None:
    # Same client id would make the broker drop the first connection for the second.
    async with probe_client(services_two) as first, probe_client(services_two) as second:
        for client in (first, second):
            await client.subscribe("aurora/sensors/probe-twins/status", qos=1)
        await first.publish("aurora/sensors/probe-twins/status", b"both", qos=1)
        async with asyncio.timeout(DEADLINE_S):
            for client in (first, second):
                message = await anext(aiter(client.messages))
                assert message.payload == b"both"


def test_a_port_taken_meanwhile_is_retried_with_fresh_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    import bench.services.providers

    real_free_port = bench.services.providers.free_port
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", real_free_port()))
        blocker.listen()
        taken = blocker.getsockname()[1]
        handed = iter([taken])
        # The first port handed out (redis of site a) is grabbed by someone else.
        monkeypatch.setattr(
            bench.services.providers,
            "free_port",
            lambda: next(handed, None) or real_free_port(),
        )
        with start_bench(BenchOptions(sites=["a"], state_dir=tmp_path, backend=False)) as started:
            redis_url = started.site("a").redis
            assert f":{taken}/" not in redis_url
            assert started.service("a", "redis").running


def test_a_killed_bench_leaves_no_server_behind(tmp_path: Path) -> None:
    # SIGKILL skips every exit hook: only the parent-death signal (setpriv) stops the child.
    import signal
    import subprocess
    import sys

    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from bench.services.local import redis_service\n"
        "from bench.services.process import free_port\n"
        "service = redis_service(Path(sys.argv[1]), 'a', free_port())\n"
        "service.start()\n"
        "print(service.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    bench = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert bench.stdout is not None
        pid = int(bench.stdout.readline())
        assert _alive(pid)
        redis = psutil.Process(pid)
        # the same pid runs redis itself: the wrappers exec'ed it in place
        assert Path(redis.cmdline()[0].split()[0]).name == "redis-server"
    finally:
        bench.send_signal(signal.SIGKILL)
        bench.wait()
    # Reparented after the kill, so not ours to wait for: watch it go (or become a zombie
    # nobody reaps, which is dead too).
    deadline = time.monotonic() + DEADLINE_S
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def test_servers_get_the_raised_open_file_limit(tmp_path: Path) -> None:
    import resource

    from bench.services.local import MOSQUITTO_NOFILE, redis_service

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # A low limit here, so that only the raise (prlimit) can give the child more.
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        service = redis_service(tmp_path, "a", free_port())
        service.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        assert service.pid is not None
        child_soft, _child_hard = psutil.Process(service.pid).rlimit(psutil.RLIMIT_NOFILE)
    finally:
        service.stop()
    # the full limit where the hard limit may be raised, else as high as it allows
    assert child_soft in {MOSQUITTO_NOFILE, min(MOSQUITTO_NOFILE, hard)}
