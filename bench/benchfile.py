"""``<state-dir>/bench.json``: how scripts, the CLI and tests find a running bench.

Schema (stable; users' scripts read it)::

    {"state_dir": "...", "ca": ".../pki/ca.crt",
     "sites": {"a": {"site_id": "a", "api": "http://127.0.0.1:PORT",
                     "mqtt": {"host": "127.0.0.1", "port": PORT, "tls": true},
                     "policy_mqtt": {"host": "127.0.0.1", "port": PORT, "tls": true},
                     "redis": "redis://127.0.0.1:PORT/0", "nats": "nats://127.0.0.1:PORT",
                     "database": "<url>", "api_token": "<JWT for the REST API>"}},
     "token_issuer": {"issuer": "http://127.0.0.1:PORT/realms/aurora",
                      "jwks": "<issuer>/protocol/openid-connect/certs",
                      "token_url": "<issuer>/protocol/openid-connect/token",
                      "audience": "aurora-bench"}}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from bench.errors import BenchFileError

BENCH_FILE = "bench.json"
DEFAULT_STATE_DIR = Path(".bench")


class MqttEndpoint(BaseModel):
    """Where a site's broker listens."""

    model_config = ConfigDict(frozen=True)

    host: str
    port: int
    tls: bool = True


class SiteInfo(BaseModel):
    """One running site, as written to bench.json."""

    model_config = ConfigDict(frozen=True)

    site_id: str
    api: str
    mqtt: MqttEndpoint
    #: The token-client listener: TLS with server authentication only, the JWT as MQTT
    #: password, authorized by the policy service through the broker's aurora_auth plugin
    #: (``None`` when the bench did not start the broker itself).
    policy_mqtt: MqttEndpoint | None = None
    redis: str
    nats: str
    database: str
    #: Bearer token for the site's REST API (``None`` while the API runs without auth).
    api_token: str | None = None

    def api_headers(self) -> dict[str, str]:
        """Headers every REST call to this site carries (the bearer token when there is one)."""
        return {"Authorization": f"Bearer {self.api_token}"} if self.api_token else {}

    def api_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An async HTTP client for this site's API, authenticated when the site wants it."""
        headers = {**self.api_headers(), **kwargs.pop("headers", {})}
        return httpx.AsyncClient(base_url=self.api, headers=headers, **kwargs)


class TokenIssuerInfo(BaseModel):
    """The bench's token issuer: where its keys are and where tokens come from."""

    model_config = ConfigDict(frozen=True)

    issuer: str
    jwks: str
    token_url: str
    audience: str


class BenchInfo(BaseModel):
    """The whole of bench.json."""

    model_config = ConfigDict(frozen=True)

    state_dir: str
    ca: str
    sites: dict[str, SiteInfo]
    token_issuer: TokenIssuerInfo | None = None

    def site(self, site_id: str) -> SiteInfo:
        """The named site, or a clear error listing the ones that exist."""
        try:
            return self.sites[site_id]
        except KeyError:
            known = ", ".join(sorted(self.sites)) or "none"
            raise BenchFileError(
                f"site {site_id!r} is not running in {self.state_dir} (running: {known})"
            ) from None


def write_bench_file(info: BenchInfo) -> Path:
    """Write bench.json atomically (a reader never sees half a file)."""
    path = Path(info.state_dir) / BENCH_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(info.model_dump_json(indent=2) + "\n")
    tmp.replace(path)
    return path


def read_bench_file(state_dir: Path | str = DEFAULT_STATE_DIR) -> BenchInfo:
    """Read bench.json from ``state_dir``; says to run ``aurora-bench up`` when absent."""
    path = Path(state_dir) / BENCH_FILE
    try:
        raw = path.read_text()
    except FileNotFoundError:
        raise BenchFileError(
            f"{path} not found: start a bench first with `aurora-bench up --state-dir {state_dir}`"
        ) from None
    try:
        return BenchInfo.model_validate(json.loads(raw))
    except (json.JSONDecodeError, ValidationError) as error:
        raise BenchFileError(f"{path} is not a valid bench file: {error}") from None
