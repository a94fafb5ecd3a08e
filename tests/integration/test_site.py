"""Whole sites: services plus the backend process, as the session fixtures start them."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from cryptography import x509

from bench.benchfile import read_bench_file
from bench.errors import BenchError, ServiceStartError
from bench.fixtures import BenchFactory, database_for_tests
from bench.site import BenchOptions, RunningBench, start_bench


def _healthy(api: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/healthz", timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _environ(bench: RunningBench, site: str) -> dict[str, str]:
    backend = bench.backend_service(site)
    assert backend is not None and backend.pid is not None
    return psutil.Process(backend.pid).environ()


def test_bench_one_is_a_complete_site(bench_one: RunningBench) -> None:
    info = read_bench_file(bench_one.state_dir)
    assert info == bench_one.info
    assert list(info.sites) == ["a"]
    assert _healthy(info.site("a").api)
    assert info.ca == str(bench_one.pki.ca_cert)
    scheme = {"sqlite": "sqlite+aiosqlite://", "postgres": "postgresql+asyncpg://"}
    assert info.site("a").database.startswith(scheme[database_for_tests()])
    timings = bench_one.startup_s
    assert set(timings) == {"services", "backends", "total"}
    assert 0 < timings["services"] < timings["total"]


def test_backend_gets_every_setting_of_its_site(bench_one: RunningBench) -> None:
    env = bench_one.backend_env("a")
    site = bench_one.site("a")
    assert env["AURORA_SITE_ID"] == "a"
    assert f"http://{env['AURORA_API_HOST']}:{env['AURORA_API_PORT']}" == site.api
    assert env["AURORA_DATABASE_URL"] == site.database
    assert env["AURORA_REDIS_URL"] == site.redis
    assert env["AURORA_NATS_URL"] == site.nats
    assert (env["AURORA_MQTT_HOST"], int(env["AURORA_MQTT_PORT"])) == (
        site.mqtt.host,
        site.mqtt.port,
    )
    assert env["AURORA_MQTT_CA"] == str(bench_one.pki.ca_cert)
    assert env["AURORA_FEDERATION_ENABLED"] == "false"
    cert = x509.load_pem_x509_certificate(Path(env["AURORA_MQTT_CERT"]).read_bytes())
    cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert cn == "aurora-backend-a"
    assert Path(env["AURORA_MQTT_KEY"]).exists()
    # ...and the running process really has them.
    running = _environ(bench_one, "a")
    assert {name: running[name] for name in env} == env


def test_bench_two_federates_two_sites(bench_two: RunningBench) -> None:
    assert bench_two.site_ids == ["a", "b"]
    for site in ("a", "b"):
        assert _healthy(bench_two.site(site).api)
        assert bench_two.backend_env(site)["AURORA_FEDERATION_ENABLED"] == "true"
    assert bench_two.site("a").nats != bench_two.site("b").nats
    assert bench_two.leafnode_port("a") is not None


def test_backend_crash_and_restart_on_the_same_port(
    bench_factory: BenchFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The caller's own AURORA_* variables must not leak into a bench backend.
    monkeypatch.setenv("AURORA_API_PORT", "1")
    bench = bench_factory(["a"], site_env={"a": {"AURORA_LOG_LEVEL": "DEBUG"}})
    api = bench.site("a").api
    backend = bench.backend_service("a")
    assert backend is not None
    running = _environ(bench, "a")
    assert running["AURORA_LOG_LEVEL"] == "DEBUG"
    assert running["AURORA_API_PORT"] != "1"

    pid = backend.pid
    assert pid is not None
    bench.stop_backend("a", kill=True)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not _healthy(api)
    bench.start_backend("a")
    assert _healthy(api)
    assert backend.pid != pid

    bench.stop_backend("a")
    assert not _healthy(api)
    bench.start_backend("a")
    assert _healthy(api)
    bench.close()
    assert not _healthy(api)


def test_failed_backend_start_shows_its_log_and_leaves_nothing(tmp_path: Path) -> None:
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    with pytest.raises(ServiceStartError) as raised:
        start_bench(
            BenchOptions(
                sites=["a"],
                state_dir=tmp_path,
                site_env={"a": {"AURORA_SITE_ID": "NOT A SITE"}},
            )
        )
    assert raised.value.service == "backend-a"
    assert "AURORA_SITE_ID" in raised.value.log_tail
    left = [
        pid
        for pid in {child.pid for child in psutil.Process().children(recursive=True)} - before
        if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]
    assert left == []
    assert not (tmp_path / "bench.json").exists()


def test_unknown_site_or_service_is_a_clear_error(bench_one: RunningBench) -> None:
    with pytest.raises(BenchError, match=r"site 'z' is not running \(running: a\)"):
        bench_one.backend_env("z")
    with pytest.raises(BenchError, match="choose one of mosquitto, nats, redis"):
        bench_one.stop_service("a", "kafka")


@pytest.mark.postgres
def test_postgres_bench_serves_the_backend(bench_factory: BenchFactory) -> None:
    bench = bench_factory(["a", "b"], db="postgres")
    urls = {site: bench.site(site).database for site in ("a", "b")}
    assert urls["a"].startswith("postgresql+asyncpg://postgres@127.0.0.1:")
    assert urls["a"].endswith("/aurora_a") and urls["b"].endswith("/aurora_b")
    for site in ("a", "b"):
        assert _healthy(bench.site(site).api)
    raw = json.loads((bench.state_dir / "bench.json").read_text())
    assert raw["sites"]["b"]["database"] == urls["b"]


def test_external_provider_runs_a_backend_against_given_servers(
    bench_factory: BenchFactory, tmp_path: Path
) -> None:
    import shutil

    from bench.site import ExternalEndpoints

    servers = bench_factory(["a"], backend=False, db="sqlite")
    site = servers.site("a")
    # The external broker trusts its own CA: the new bench issues from the same one.
    shutil.copytree(servers.pki.root, tmp_path / "pki")
    endpoints = ExternalEndpoints(site.mqtt.host, site.mqtt.port, site.redis, site.nats)
    with start_bench(
        BenchOptions(
            sites=["a"], state_dir=tmp_path, provider="external", external={"a": endpoints}
        )
    ) as bench:
        assert bench.site("a").mqtt == site.mqtt
        assert bench.site("a").redis == site.redis
        assert bench.site("a").database.endswith(f"{tmp_path}/a/aurora.db")
        assert _healthy(bench.site("a").api)
        with pytest.raises(BenchError, match="not run by the bench"):
            bench.stop_service("a", "mosquitto")
    # Closing an external bench stops its backend only; the servers keep running.
    assert servers.service("a", "mosquitto").running


def test_a_second_bench_in_a_running_state_dir_is_refused(bench_one: RunningBench) -> None:
    with pytest.raises(BenchError, match="already running"):
        start_bench(BenchOptions(sites=["a"], state_dir=bench_one.state_dir))
    assert read_bench_file(bench_one.state_dir) == bench_one.info
    assert _healthy(bench_one.site("a").api)


def test_the_plugin_gives_any_suite_a_bench(tmp_path: Path) -> None:
    import subprocess
    import sys
    import textwrap

    (tmp_path / "test_user_suite.py").write_text(
        textwrap.dedent(
            """
            import asyncio

            from bench.fixtures import device_client, probe_client


            def test_bench_one_runs(bench_one):
                assert bench_one.site_ids == ["a"]
                assert bench_one.backend_service("a").running


            def test_device_reaches_the_probe(bench_one):
                async def roundtrip():
                    async with probe_client(bench_one) as probe:
                        await probe.subscribe("aurora/sensors/+/telemetry", qos=1)
                        async with device_client(bench_one, "esp32s3-plugin-01") as device:
                            await device.publish(
                                "aurora/sensors/esp32s3-plugin-01/telemetry", b"{}", qos=1
                            )
                        async with asyncio.timeout(15):
                            return await anext(aiter(probe.messages))

                message = asyncio.run(roundtrip())
                assert str(message.topic) == "aurora/sensors/esp32s3-plugin-01/telemetry"
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


async def test_backend_logs_are_json_lines_naming_site_and_device(bench_one: RunningBench) -> None:
    import asyncio
    import time
    import uuid

    from bench.fixtures import device_client

    device = f"esp32s3-log-{uuid.uuid4().hex[:8]}"
    log_file = bench_one.backend_log("a")

    def records() -> list[dict[str, object]]:
        return [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]

    # uvicorn's own lines go through the same formatter
    assert any(str(r["logger"]).startswith("uvicorn") for r in records())
    async with device_client(bench_one, device) as client:
        await client.publish(f"aurora/sensors/{device}/status", b"{not json", qos=1)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        mine = [r for r in records() if r["device"] == device]
        if mine:
            break
        await asyncio.sleep(0.05)
    assert mine, f"no log line of {device} in {log_file}"
    assert all(r["site"] == "a" for r in records())
    assert "rejected message" in str(mine[0]["message"])
