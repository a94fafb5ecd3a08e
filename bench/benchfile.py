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
                      "audience": "aurora-bench"},
     "sentinel": {   (only with `aurora-bench up --sentinel`)
         "nodes": [{"region": "us-east", "nats": "tls://127.0.0.1:PORT",
                    "mqtt": {"host": "127.0.0.1", "port": PORT, "tls": true},
                    "websocket": "wss://127.0.0.1:PORT/mqtt",
                    "monitor": "http://127.0.0.1:PORT", "pid": N}, ...],
         "origin": {"site": "a", "mqtt": {"host": "127.0.0.1", "port": PORT, "tls": true},
                    "publisher_cert": ".../pki/services/sentinel-alert-publisher.crt",
                    "publisher_key": ".../pki/services/sentinel-alert-publisher.key"},
         "stream": "MQTT_ALERTS"}}
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


class SentinelNodeInfo(BaseModel):
    """One Sentinel node (one per seed region)."""

    model_config = ConfigDict(frozen=True)

    region: str
    nats: str
    mqtt: MqttEndpoint
    websocket: str
    monitor: str
    pid: int | None = None


class SentinelOrigin(BaseModel):
    """The customer origin: the site Mosquitto whose bridge feeds the Sentinel."""

    model_config = ConfigDict(frozen=True)

    site: str
    mqtt: MqttEndpoint
    publisher_cert: str
    publisher_key: str


class SentinelInfo(BaseModel):
    """The ``sentinel`` section of bench.json (present with ``aurora-bench up --sentinel``)."""

    model_config = ConfigDict(frozen=True)

    nodes: list[SentinelNodeInfo]
    origin: SentinelOrigin
    stream: str = "MQTT_ALERTS"

    def node(self, region: str) -> SentinelNodeInfo:
        """The node of ``region`` (clear error naming the regions)."""
        for node in self.nodes:
            if node.region == region:
                return node
        known = ", ".join(node.region for node in self.nodes)
        raise BenchFileError(f"no Sentinel node in region {region!r} (regions: {known})")


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
    sentinel: SentinelInfo | None = None
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
    # No "sentinel" key unless one runs: scripts written before it see the same file.
    exclude = {"sentinel"} if info.sentinel is None else None
    tmp.write_text(info.model_dump_json(indent=2, exclude=exclude) + "\n")
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
