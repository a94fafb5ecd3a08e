"""Backend settings: the only module of the backend that reads the environment.

Every variable is ``AURORA_<FIELD>`` (e.g. ``AURORA_SITE_ID``, ``AURORA_MQTT_PORT``); dict
settings take JSON (``AURORA_TELEMETRY_THRESHOLDS='{"temperature_c": [-20, 60]}'``).
Timing settings are settings so scenarios can shrink them (DESIGN.md, Time).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from backend.contract import Severity

#: Seed 001 names per-metric thresholds without values; these are the bench's defaults
#: for the boards it simulates (AHT21B range, PIR 0/1, coin-cell percentage).
DEFAULT_TELEMETRY_THRESHOLDS: dict[str, tuple[float, float]] = {
    "temperature_c": (-20.0, 60.0),
    "humidity_pct": (0.0, 100.0),
    "presence": (0.0, 1.0),
    "battery_pct": (5.0, 100.0),
    "battery_v": (2.0, 3.6),
    "co2_ppm": (0.0, 5000.0),
}


class Settings(BaseSettings):
    """Everything one site's backend needs, explicit so two sites can share a process."""

    model_config = SettingsConfigDict(env_prefix="AURORA_", extra="forbid", frozen=True)

    site_id: str = Field("a", pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    site_name: str = ""
    api_host: str = "127.0.0.1"
    api_port: int = 8000

    database_url: str = "sqlite+aiosqlite:///aurora.db"
    redis_url: str = "redis://127.0.0.1:6379/0"
    stream_maxlen: int = 100_000

    mqtt_enabled: bool = True
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 8883
    mqtt_tls: bool = True
    mqtt_ca: Path | None = None
    mqtt_cert: Path | None = None
    mqtt_key: Path | None = None
    mqtt_client_id: str = ""
    mqtt_session_expiry_s: int = 3600
    mqtt_share_group: str = "ingest"
    #: Unacknowledged QoS 1 messages the broker may send ahead of the ingest's PUBACKs.
    #: Several batches' worth (``ingest_batch_max``): while one batch is in Redis the next
    #: is already arriving; at one batch's worth the broker waited for every ack.
    mqtt_receive_maximum: int = 4000
    #: Verify that the broker certificate names ``mqtt_host`` (the bench PKI adds IP SANs).
    mqtt_tls_check_hostname: bool = True
    mqtt_reconnect_max_s: float = Field(10.0, gt=0)

    #: Most messages handled (and acknowledged) as one batch on the ingest hot path.
    ingest_batch_max: int = 1000
    #: Fault injection for crash tests: wait this long between a batch landing and its
    #: PUBACKs, widening the "processed but not acknowledged" window. Keep 0 in production.
    ingest_ack_delay_s: float = 0.0
    #: A message whose processing failed this many deliveries in a row is acknowledged
    #: into the dead-letter stream instead of blocking the queue (issue 11.1).
    ingest_max_deliveries: int = Field(default=3, ge=1)
    #: Ingest processes on the shared subscription (issue 17). Worker 0 is this process
    #: and takes every message kind; workers 1.. are child processes that share only the
    #: telemetry filter, the hot path, so commands, attestation and federation stay here.
    ingest_workers: int = Field(default=1, ge=1, le=32)
    #: Which worker this process is (set by the parent for its children; 0 = the main one).
    ingest_worker_index: int = Field(default=0, ge=0)
    #: Fault injection for dead-letter tests: processing a payload that contains this
    #: text raises (a stand-in for any bug a message can trigger). Keep unset in production.
    ingest_fault_marker: str | None = None
    #: How often cached ``last_seen`` refreshes are written to the database.
    last_seen_flush_interval_s: float = 1.0
    #: Bytes of a rejected payload kept in its ``rejected_message`` audit entry.
    audit_excerpt_bytes: int = 256

    telemetry_thresholds: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: dict(DEFAULT_TELEMETRY_THRESHOLDS)
    )
    unlock_duration_s: int = 5
    attestation_expires_in_s: int = 30
    attestation_failure_risk_bump: float = 40.0
    drift_risk_bump: float = 30.0

    nats_url: str | None = None
    federation_enabled: bool = False
    heartbeat_interval_seconds: float = 15.0
    link_degraded_after_s: float = 45.0
    link_down_after_s: float = 120.0
    federate_min_severity: Severity = Severity.HIGH

    #: The policy service's rules file (seed 004's shape); None: the bench's own file.
    policy_rules: Path | None = None
    #: Token issuer (the bench's, or a lab's Keycloak realm): JWKS URL, expected ``iss``
    #: and ``aud``. Without a JWKS URL no token is accepted anywhere.
    auth_jwks_url: str | None = None
    auth_issuer: str | None = None
    auth_audience: str = "aurora-bench"
    #: Asymmetric algorithms only (never none or HMAC; checked at startup).
    auth_algorithms: list[str] = Field(default_factory=lambda: ["ES256", "RS256"])
    auth_leeway_s: float = 30.0
    #: An unknown ``kid`` refreshes the JWKS at most this often.
    auth_jwks_refresh_min_s: float = 10.0
    #: Require a bearer token on the REST API (``/healthz`` is always open).
    api_auth: bool = True
    #: Leave ``/metrics`` open to scrapers without a token.
    api_open_metrics: bool = True

    #: The Sentinel nodes' monitor URLs by region, for the console's Sentinel panel:
    #: ``AURORA_SENTINEL_MONITORS="us-east=http://127.0.0.1:8222,eu-west=..."`` (the bench
    #: passes it to the origin site's backend with ``--sentinel``). Empty: no panel.
    sentinel_monitors: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)

    log_level: str = "INFO"
    #: ``json`` (one object per line: site, device, trace id) or ``text`` for a terminal.
    log_format: Literal["json", "text"] = "json"

    @field_validator("sentinel_monitors", mode="before")
    @classmethod
    def _monitors_from_text(cls, value: Any) -> Any:
        return parse_monitors(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _federation_timing_works(self) -> Self:
        """With federation on, refuse settings its loops cannot work with, saying what to
        change (a healthy link must not flap to degraded between two heartbeats)."""
        if not self.federation_enabled:
            return self
        problems: list[str] = []
        if not self.nats_url:
            problems.append(
                "AURORA_FEDERATION_ENABLED=true needs AURORA_NATS_URL (nats://host:port)"
            )
        if self.heartbeat_interval_seconds <= 0:
            problems.append(
                "AURORA_HEARTBEAT_INTERVAL_SECONDS must be > 0, "
                f"got {self.heartbeat_interval_seconds}"
            )
        if not 0 < self.link_degraded_after_s <= self.link_down_after_s:
            problems.append(
                "need 0 < AURORA_LINK_DEGRADED_AFTER_S <= AURORA_LINK_DOWN_AFTER_S, got "
                f"{self.link_degraded_after_s} and {self.link_down_after_s}"
            )
        elif self.link_degraded_after_s <= self.heartbeat_interval_seconds:
            problems.append(
                f"AURORA_LINK_DEGRADED_AFTER_S ({self.link_degraded_after_s}) must exceed "
                f"AURORA_HEARTBEAT_INTERVAL_SECONDS ({self.heartbeat_interval_seconds}), "
                "or a healthy link flaps to degraded between two heartbeats"
            )
        if problems:
            raise ValueError("federation settings: " + "; ".join(problems))
        return self

    @property
    def client_id(self) -> str:
        """MQTT client id; fixed per site so the persistent session survives restarts."""
        base = self.mqtt_client_id or f"aurora-backend-{self.site_id}"
        # Each worker keeps its own persistent session: a restarted worker gets back
        # exactly the messages it had not acknowledged, and its markers match them.
        return f"{base}-w{self.ingest_worker_index}" if self.ingest_worker_index else base

    def for_worker(self, index: int) -> str:
        """These settings for ingest worker ``index``, as the JSON its process reads."""
        return self.model_copy(
            update={"ingest_worker_index": index, "federation_enabled": False}
        ).model_dump_json()


_REGION = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def parse_monitors(text: str) -> dict[str, str]:
    """``region=url,region=url`` as a dict; ValueError naming the bad item and why."""
    monitors: dict[str, str] = {}
    for position, raw in enumerate(text.split(","), start=1):
        item = raw.strip()
        if not item:
            continue
        region, sep, url = (part.strip() for part in item.partition("="))
        where = f"AURORA_SENTINEL_MONITORS item {position} ({item[:80]!r})"
        if not sep or not _REGION.fullmatch(region):
            raise ValueError(f"{where}: expected region=http://host:port, region as [a-z0-9_-]")
        if not url.startswith(("http://", "https://")) or len(url) <= len("http://"):
            raise ValueError(f"{where}: the monitor URL must start with http:// or https://")
        if region in monitors:
            raise ValueError(f"{where}: region {region!r} is given twice")
        monitors[region] = url.rstrip("/")
    return monitors


#: Environment variable through which a worker process gets its parent's settings.
WORKER_SETTINGS_ENV = "AURORA_INGEST_WORKER_SETTINGS"


def worker_settings() -> Settings:
    """The settings an ingest worker process was started with (see :meth:`for_worker`)."""
    blob = os.environ.get(WORKER_SETTINGS_ENV)
    if blob is None:
        raise RuntimeError(f"{WORKER_SETTINGS_ENV} is not set: workers are started by the backend")
    return Settings(**json.loads(blob))
