"""Settings of the Sentinel processes (``AURORA_SENTINEL_*``); the bench writes them."""

from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from backend.contract import Severity
from backend.sentinel.shards import DEFAULT_SHARDS, MAX_SHARDS


class SentinelSettings(BaseSettings):
    """What a callout or worker process needs; explicit so tests can build one in-process."""

    model_config = SettingsConfigDict(env_prefix="AURORA_SENTINEL_", extra="forbid", frozen=True)

    #: Every node's NATS URL (``tls://...``), comma-separated in the environment.
    nats_urls: list[str] = Field(default_factory=lambda: ["tls://127.0.0.1:4222"])
    ca: Path | None = None
    user: str = ""
    password: SecretStr = SecretStr("")
    #: The callout issuer's account nkey seed (``SA...``); callout only.
    issuer_seed: SecretStr = SecretStr("")
    #: Clients are spread over this many accounts ``CLIENTS_0..`` by a hash of their id
    #: (:mod:`backend.sentinel.shards`): the callout places them, the worker feeds them.
    #: Part of the cluster's layout: every node config, callout and worker must agree.
    client_shards: int = Field(default=DEFAULT_SHARDS, ge=1, le=MAX_SHARDS)
    database_url: str = "sqlite+aiosqlite:///aurora.db"
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Successful checks are remembered this long (the seed's per-region "Auth Cache"):
    #: the worst-case delay of a revocation when the Auth DB cannot be polled.
    auth_cache_ttl_s: float = 60.0
    #: The Auth DB is polled this often for changed rows, whose cached credentials are
    #: dropped: ``sentinel client disable`` takes effect within about this long.
    auth_revoke_poll_s: float = 1.0
    #: Most auth requests handled at once (KDF checks run in threads).
    callout_concurrency: int = 32
    #: Prometheus metrics port (0: none).
    metrics_port: int = 0
    #: Worker: ingress messages fetched per batch and the publish retry budget.
    worker_batch: int = 100
    publish_retry_s: float = 60.0
    #: Worker: the inspection rules file (None: the shipped default_rules.yaml); ``--rules``
    #: on the command line wins.
    rules: Path | None = None
    #: Worker: which of how many workers this is (it owns partitions p % count == index).
    worker_index: int = 0
    worker_count: int = 1
    #: Worker: the origin site's REST API, where security events are raised as alerts
    #: (empty: not raised), and a token with the ``aurora.operate`` scope.
    api_url: str = ""
    api_token: SecretStr = SecretStr("")
    #: Worker: events at or above this severity become site alerts (low, medium, high, ...).
    alert_min_severity: Severity = Severity.HIGH
    #: The origin site's id (the ``site`` of JSON log lines).
    site_id: str = "sentinel"
    #: ``json`` (backend/logs.py lines) or ``text``.
    log_format: str = "json"
    #: WebSocket bridge: the origin broker, its client cert, the nodes' ``wss://.../mqtt``.
    origin_host: str = "127.0.0.1"
    origin_port: int = 8883
    origin_cert: Path | None = None
    origin_key: Path | None = None
    websocket_urls: list[str] = Field(default_factory=list)
    waf_max_message_bytes: int = 4096
    waf_rate_per_s: float = 100.0
    waf_burst: float = 200.0
    instance: str = "sentinel"
    #: Touched once the process serves (the bench waits for it).
    ready_file: Path | None = None
    log_level: str = "INFO"

    def tls_context(self) -> ssl.SSLContext:
        """Client TLS context trusting the bench CA (TLS 1.3 like every external listener)."""
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(self.ca) if self.ca else None
        )
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        return context

    def mark_ready(self) -> None:
        """Touch :attr:`ready_file` (if set): the process now serves."""
        if self.ready_file is not None:
            self.ready_file.touch()
