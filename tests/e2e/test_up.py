"""``aurora-bench up`` and ``aurora-bench certs`` as a user runs them: as subprocesses."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from cryptography import x509

from bench.benchfile import read_bench_file
from bench.services.process import tcp_accepts
from tests.e2e.up import (
    CLI,
    START_DEADLINE_S,
    alive,
    descendants,
    sigterm,
    up,
    wait_for_bench_file,
)


def test_up_writes_bench_json_and_stops_everything_on_sigterm(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    with up("--sites", "a", "--state-dir", str(state_dir)) as proc:
        wait_for_bench_file(proc, state_dir)
        raw = json.loads((state_dir / "bench.json").read_text())
        assert set(raw) == {"state_dir", "ca", "sites", "token_issuer"}
        assert set(raw["token_issuer"]) == {"issuer", "jwks", "token_url", "audience"}
        assert set(raw["sites"]) == {"a"}
        site = raw["sites"]["a"]
        assert set(site) == {
            "site_id",
            "api",
            "mqtt",
            "policy_mqtt",
            "redis",
            "nats",
            "database",
            "api_token",
        }
        assert site["site_id"] == "a"
        assert site["mqtt"]["tls"] is True
        assert site["redis"].startswith("redis://127.0.0.1:") and site["redis"].endswith("/0")
        assert site["nats"].startswith("nats://127.0.0.1:")
        assert site["database"] == f"sqlite+aiosqlite:///{state_dir.absolute()}/a/aurora.db"
        assert Path(raw["ca"]) == state_dir.absolute() / "pki" / "ca.crt"
        x509.load_pem_x509_certificate(Path(raw["ca"]).read_bytes())
        info = read_bench_file(state_dir)
        with urllib.request.urlopen(f"{info.site('a').api}/healthz", timeout=5) as response:
            assert response.status == 200
        assert tcp_accepts(info.site("a").mqtt.host, info.site("a").mqtt.port)
        _check_the_api_wants_a_token(state_dir, info.site("a").api, site["api_token"])

        children = descendants(proc.pid)
        names = {child.name() for child in children}
        assert {"mosquitto", "nats-server", "redis-server"} <= names
        output = sigterm(proc)
    assert proc.returncode == 0, output
    assert "site a" in output and "stopped" in output
    assert site["api_token"] in output  # the ready operator token is printed whole
    assert [child.pid for child in children if alive(child)] == []
    assert not (state_dir / "bench.json").exists()


def _get(url: str, token: str | None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _mint(state_dir: Path, *args: str) -> str:
    command = [CLI, "token", *args, "--ttl", "60", "--state-dir", str(state_dir)]
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    return result.stdout.strip()


def _check_the_api_wants_a_token(state_dir: Path, api: str, operator_token: str) -> None:
    devices = f"{api}/api/v1/cps/devices"
    status, body = _get(devices, None)
    assert status == 401
    assert "aurora-bench token" in json.loads(body)["error"]
    assert _get(devices, operator_token)[0] == 200
    minted = _mint(state_dir, "--sub", "qa", "--type", "user", "--scope", "aurora.read")
    assert _get(devices, minted)[0] == 200
    mqtt_only = _mint(state_dir, "--sub", "svc-digital-twin", "--scope", "mqtt.write")
    assert _get(devices, mqtt_only)[0] == 403


def test_certs_issue_writes_and_prints_both_paths(tmp_path: Path) -> None:
    result = subprocess.run(
        [CLI, "certs", "issue", "stm32f401-door-03", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    cert = tmp_path / "pki" / "devices" / "stm32f401-door-03.crt"
    key = tmp_path / "pki" / "devices" / "stm32f401-door-03.key"
    assert str(cert) in result.stdout and str(key) in result.stdout
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    cn = loaded.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert cn == "stm32f401-door-03"
    assert key.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["certs", "issue", "door/03"], "does not match"),
        (["certs", "issue", "door-03", "--variant", "stolen"], "Invalid value for '--variant'"),
        (["up", "--sites", "a,b,c"], "one or two sites"),
        (["up", "--sites", "A!"], "bad site id"),
        (["up", "--db", "mysql"], "'mysql' is not one of 'sqlite', 'postgres'"),
        (["up", "--provider", "k8s"], "'k8s' is not one of 'local', 'docker', 'external'"),
        (["up", "--provider", "external"], "needs --mqtt, --redis, --nats"),
        (["up", "--env", "NOT_AURORA=1"], "AURORA_NAME=VALUE"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = subprocess.run(
        [CLI, *args, "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def _command(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def _wait_for_backend(proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + START_DEADLINE_S
    while not any(_command(c)[-2:] == ["-m", "backend"] for c in descendants(proc.pid)):
        assert proc.poll() is None, "aurora-bench up ended before starting a backend"
        assert time.monotonic() < deadline, "no backend started"
        time.sleep(0.02)


def test_sigterm_while_starting_stops_what_was_started(tmp_path: Path) -> None:
    with up("--sites", "a,b", "--state-dir", str(tmp_path)) as proc:
        # The backends come last: once one runs, the services are up and it is still starting.
        _wait_for_backend(proc)
        children = descendants(proc.pid)
        output = sigterm(proc)
    assert proc.returncode == 0, output
    assert "interrupted while starting" in output
    assert [child.name() for child in children if alive(child)] == []
    assert not (tmp_path / "bench.json").exists()


def test_a_killed_bench_takes_its_servers_with_it(tmp_path: Path) -> None:
    args = ("--sites", "a", "--no-backend", "--state-dir", str(tmp_path))
    with up(*args, stdout=subprocess.DEVNULL) as proc:
        wait_for_bench_file(proc, tmp_path)
        children = descendants(proc.pid)
        assert {"mosquitto", "nats-server", "redis-server"} <= {c.name() for c in children}
        proc.kill()  # SIGKILL: no handler runs; the children's parent-death signal must
        proc.wait()
    _gone, left = psutil.wait_procs(children, timeout=10)
    assert [child.name() for child in left if alive(child)] == []
