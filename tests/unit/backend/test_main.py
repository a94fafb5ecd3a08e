"""``python -m backend`` refuses bad configuration with one clear line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AURORA_")}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-m", "backend"],
        env=clean,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"AURORA_API_PORT": "eighty"}, "AURORA_API_PORT"),
        ({"AURORA_SITE_ID": "Bad Site!"}, "AURORA_SITE_ID"),
        ({"AURORA_MQTT_CA": "/nonexistent/ca.crt"}, "check AURORA_MQTT_CA"),
        (
            {"AURORA_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"},
            "check AURORA_DATABASE_URL",
        ),
        (
            {"AURORA_POLICY_RULES": "/nonexistent/rules.json"},
            "/nonexistent/rules.json: cannot read the rules file",
        ),
        (
            {
                "AURORA_AUTH_JWKS_URL": "http://127.0.0.1:1/certs",
                "AURORA_AUTH_ALGORITHMS": '["HS256"]',
            },
            "never none or HMAC",
        ),
        # a cross-field settings check: no field location, the message names the variables
        ({"AURORA_FEDERATION_ENABLED": "true"}, "needs AURORA_NATS_URL"),
    ],
)
def test_bad_configuration_exits_2_with_a_clear_message(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    result = _run(tmp_path, **env)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run(tmp_path, AURORA_API_PORT=str(port), AURORA_MQTT_ENABLED="false")
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_ingest_path_imports_no_http_side() -> None:
    """Issue 17: ``python -m backend`` starts its ingest before it imports the web side, and
    an ingest worker never imports it; what they import up to then holds none of it."""
    http_side = ("fastapi", "starlette", "uvicorn", "backend.app", "backend.api", "backend.console")
    code = (
        "import sys, backend.__main__, backend.ingest.worker; "
        f"print(sorted(m for m in {http_side!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout
