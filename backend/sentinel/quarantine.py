"""The quarantine: alerts the inspection stopped, kept for review instead of delivered.

A quarantined alert is stored in the JetStream stream :data:`QUARANTINE_STREAM`
(``sentinel.quarantine.clients.<id>.alerts``, same retention and replicas as
``MQTT_ALERTS``) with its original body and what the pipeline found in headers, so a
reviewer sees exactly what the client would have received and why it did not. Clients
cannot read it: their permissions allow ``clients.<id>.alerts`` only.

Headers (strings, each bounded so a hostile payload cannot inflate them):

* ``Sentinel-Client``: the addressee; ``Sentinel-Verdict``: ``quarantine``;
* ``Sentinel-Findings``: a JSON list of ``{"stage", "rule", "severity", "detail"}``;
* ``Sentinel-Received-At``: unix seconds when the worker received it;
* ``Nats-Msg-Id``: the alert's stream id, so a resent alert is quarantined once.

:func:`quarantine_headers` and :func:`read_entry` are pure; the worker publishes, and
``aurora-bench sentinel quarantine list`` reads with :func:`list_quarantined`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from backend.sentinel.naming import (
    QUARANTINE_STREAM,
    QUARANTINE_SUBJECTS,
    STREAM_MAX_AGE_S,
    STREAM_REPLICAS,
)
from backend.sentinel.stages import Finding

#: Findings kept in the header, and characters of each detail (a header is not a log).
MAX_FINDINGS = 20
MAX_DETAIL_CHARS = 300
#: Bytes of the body a listing shows (the stored body is whole).
PREVIEW_BYTES = 200
#: Messages a listing looks at, at most.
MAX_SCAN = 20_000


def quarantine_stream_config() -> StreamConfig:
    """The quarantine stream: like ``MQTT_ALERTS`` (72 h, file, 3 replicas), its own subjects."""
    return StreamConfig(
        name=QUARANTINE_STREAM,
        subjects=list(QUARANTINE_SUBJECTS),
        retention=RetentionPolicy.LIMITS,
        max_age=float(STREAM_MAX_AGE_S),
        storage=StorageType.FILE,
        num_replicas=STREAM_REPLICAS,
        discard=DiscardPolicy.OLD,
        duplicate_window=120.0,
    )


async def ensure_quarantine(js: JetStreamContext) -> None:
    """Create the quarantine stream, or bring its config back (idempotent)."""
    config = quarantine_stream_config()
    try:
        await js.stream_info(QUARANTINE_STREAM)
    except NotFoundError:
        await js.add_stream(config)
    else:
        await js.update_stream(config)


def findings_json(findings: Sequence[Finding]) -> str:
    """The ``Sentinel-Findings`` header value (bounded)."""
    return json.dumps(
        [
            {
                "stage": f.stage,
                "rule": f.rule,
                "severity": f.severity,
                "detail": f.detail[:MAX_DETAIL_CHARS],
            }
            for f in findings[:MAX_FINDINGS]
        ],
        separators=(",", ":"),
    )


def quarantine_headers(
    client_id: str, message_id: str, findings: Sequence[Finding], received_at: float
) -> dict[str, str]:
    """Every header a quarantined alert is stored with."""
    return {
        "Nats-Msg-Id": message_id,
        "Sentinel-Client": client_id,
        "Sentinel-Verdict": "quarantine",
        "Sentinel-Findings": findings_json(findings),
        "Sentinel-Received-At": f"{received_at:.6f}",
    }


@dataclass(frozen=True)
class QuarantinedAlert:
    """One stored alert as a reviewer sees it."""

    seq: int
    client_id: str
    received_at: float | None
    findings: list[dict[str, Any]]
    size: int
    preview: str

    def as_json(self) -> dict[str, Any]:
        """One line of ``aurora-bench sentinel quarantine list``."""
        return {
            "seq": self.seq,
            "client_id": self.client_id,
            "received_at": self.received_at,
            "rules": [f.get("rule") for f in self.findings],
            "findings": self.findings,
            "size": self.size,
            "preview": self.preview,
        }


def read_entry(seq: int, headers: dict[str, str] | None, payload: bytes) -> QuarantinedAlert:
    """A stored message back as a :class:`QuarantinedAlert` (tolerates odd headers)."""
    headers = headers or {}
    try:
        findings = json.loads(headers.get("Sentinel-Findings", "[]"))
        if not isinstance(findings, list):
            findings = []
    except ValueError:
        findings = []
    try:
        received: float | None = float(headers.get("Sentinel-Received-At", ""))
    except ValueError:
        received = None
    return QuarantinedAlert(
        seq=seq,
        client_id=headers.get("Sentinel-Client", "?"),
        received_at=received,
        findings=[f for f in findings if isinstance(f, dict)],
        size=len(payload),
        preview=payload[:PREVIEW_BYTES].decode("utf-8", "replace"),
    )


async def list_quarantined(
    js: JetStreamContext, *, client_id: str | None = None, limit: int = 100
) -> list[QuarantinedAlert]:
    """The newest ``limit`` quarantined alerts (of one client if given), oldest first."""
    try:
        info = await js.stream_info(QUARANTINE_STREAM)
    except NotFoundError:
        return []
    first, last = info.state.first_seq, info.state.last_seq
    out: list[QuarantinedAlert] = []
    subject = f"sentinel.quarantine.clients.{client_id}.alerts" if client_id else None
    seq = last
    # Newest first by sequence; deleted or aged-out sequences are skipped. A client filter
    # looks at most MAX_SCAN messages back (a listing is for review, not an export).
    stop = max(first, last - MAX_SCAN + 1, 1)
    while seq >= stop and len(out) < limit:
        try:
            raw = await js.get_msg(QUARANTINE_STREAM, seq)
        except NotFoundError:
            seq -= 1
            continue
        if subject is None or raw.subject == subject:
            out.append(read_entry(seq, dict(raw.headers or {}), raw.data or b""))
        seq -= 1
    return list(reversed(out))
