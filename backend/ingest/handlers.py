"""The handlers of every upstream kind but telemetry (seed 001, "Backend behaviour").

:class:`KindHandlers` registers devices and judges their firmware (status), forwards
device alerts, authorises badges (and sends the unlock), and records attestation answers.
Each appends its audit entries to the batch's list, which
:class:`~backend.ingest.pipeline.IngestPipeline` writes with the rest of the batch; the
telemetry hot path stays in the pipeline.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.alerts import AlertService
from backend.attestation import AttestationService, bump_risk
from backend.bus import StreamEntry
from backend.contract import (
    AlertMessage,
    AttestationResponse,
    BadgeEvent,
    CommandMessage,
    CommandVerb,
    MessageKind,
    Severity,
    StatusMessage,
    Topic,
    topic_for,
)
from backend.contract import encode as encode_message
from backend.contract.messages import now_rfc3339
from backend.ingest.consumer import RawMessage
from backend.ingest.decisions import DeviceTrust, authorize_badge, decide_status, normalise_uid
from backend.ingest.registry import DeviceRegistry
from backend.metrics import BackendMetrics
from backend.settings import Settings
from backend.store import Device, utcnow
from backend.store.queries import ensure_devices, grants_for_uid

Publisher = Callable[[str, bytes, int], Awaitable[None]]
#: Builds an ``aurora:audit`` entry: (kind, data, trace).
AuditEntry = Callable[[str, dict[str, Any], str | None], StreamEntry]


class KindHandlers:
    """One coroutine per upstream kind but telemetry; see the module docstring."""

    def __init__(  # noqa: PLR0917 - explicit components, no hidden singletons
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        registry: DeviceRegistry,
        alerts: AlertService,
        attestation: AttestationService,
        metrics: BackendMetrics,
        publish: Publisher,
        audit: AuditEntry,
    ) -> None:
        self._settings = settings
        self._sessionmaker = sessionmaker
        self._registry = registry
        self._alerts = alerts
        self._attestation = attestation
        self._metrics = metrics
        self._publish = publish
        self._audit = audit

    def dispatch(
        self, topic: Topic, decoded: Any, message: RawMessage, entries: list[StreamEntry]
    ) -> Awaitable[None]:
        if isinstance(decoded, StatusMessage):
            return self._status(decoded, message, entries)
        if isinstance(decoded, AlertMessage):
            return self._device_alert(decoded, message, entries)
        if isinstance(decoded, BadgeEvent):
            return self._badge(decoded, message, entries)
        if isinstance(decoded, AttestationResponse):
            return self._attestation_response(decoded, message, entries)
        raise TypeError(f"no handler for {topic.kind.value}")  # pragma: no cover

    # -- status: registration, TOFU, drift -----------------------------------------------

    async def _status(
        self, status: StatusMessage, message: RawMessage, entries: list[StreamEntry]
    ) -> None:
        now = utcnow()
        async with self._sessionmaker.begin() as session:
            await ensure_devices(session, [status.device_id], now)
            device = await session.get(Device, status.device_id, with_for_update=True)
            assert device is not None  # ensured just above
            registered = device.device_type is None and device.firmware_version is None
            decision = decide_status(
                DeviceTrust(device.firmware_hash, device.reported_hash, device.trust_status),
                status,
            )
            device.device_type = status.device_type
            device.board_family = status.board_family
            device.firmware_stack = status.firmware_stack
            device.firmware_version = status.firmware_version
            device.firmware_hash = decision.baseline
            device.reported_hash = decision.reported_hash
            device.trust_status = decision.trust_status
            device.last_seen = now
            if decision.drift_alert:
                bump_risk(device, self._settings.drift_risk_bump)
        self._registry.mark_known(status.device_id)
        entries.append(
            self._audit(
                "device_status",
                {
                    "device_id": status.device_id,
                    "registered": registered,
                    "trust_status": decision.trust_status.value,
                    "firmware_version": status.firmware_version,
                    "firmware_hash": status.firmware_hash,
                },
                message.trace,
            )
        )
        if decision.drift_alert:
            await self._alerts.raise_alert(
                "firmware_drift",
                Severity.HIGH,
                f"Firmware drift on {status.device_id}",
                description=(
                    f"reported firmware hash {status.firmware_hash} differs from the trusted "
                    f"baseline {decision.baseline}: possible tampering"
                ),
                device_id=status.device_id,
                details={
                    "baseline": decision.baseline,
                    "reported": status.firmware_hash,
                    "firmware_version": status.firmware_version,
                },
                trace=message.trace,
            )

    # -- device alerts -------------------------------------------------------------------

    async def _device_alert(
        self, alert: AlertMessage, message: RawMessage, entries: list[StreamEntry]
    ) -> None:
        self._registry.touch(alert.device_id)
        await self._alerts.raise_alert(
            alert.type,
            alert.severity,
            f"{alert.type} reported by {alert.device_id}",
            description=alert.event_details,
            device_id=alert.device_id,
            details={"event_details": alert.event_details},
            # Seed 001: "forwarded verbatim to the CPS alert stream".
            stream_extra={"payload": message.payload.decode("utf-8")},
            trace=message.trace,
        )

    # -- badge events: authorise, unlock or deny -----------------------------------------

    async def _badge(
        self, badge: BadgeEvent, message: RawMessage, entries: list[StreamEntry]
    ) -> None:
        uid = normalise_uid(badge.uid)
        async with self._sessionmaker.begin() as session:
            await self._registry.ensure(session, badge.device_id)
            grants = await grants_for_uid(session, uid)
        self._registry.mark_known(badge.device_id)
        self._registry.touch(badge.device_id)
        granted = authorize_badge(grants, uid, badge.device_id)
        entries.append(
            self._audit(
                "badge_read",
                {
                    "device_id": badge.device_id,
                    "uid": uid,
                    "decision": "granted" if granted else "denied",
                },
                message.trace,
            )
        )
        if granted:
            command = await self.send_command(
                badge.device_id, CommandVerb.UNLOCK, self._settings.unlock_duration_s
            )
            entries.append(
                self._audit(
                    "command_sent",
                    {
                        "device_id": badge.device_id,
                        "verb": command.verb.value,
                        "request_id": command.request_id,
                        "reason": f"badge {uid} granted",
                    },
                    message.trace,
                )
            )
        else:
            await self._alerts.raise_alert(
                "access_denied",
                Severity.MEDIUM,
                f"Badge {uid} denied at {badge.device_id}",
                description=f"no access grant lets badge {uid} open {badge.device_id}",
                device_id=badge.device_id,
                details={"uid": uid},
                trace=message.trace,
            )

    async def send_command(
        self, device_id: str, verb: CommandVerb, duration_s: int | None = None
    ) -> CommandMessage:
        """Publish a lock verb (QoS 1) on ``aurora/access/<id>/command``."""
        command = CommandMessage(
            verb=verb,
            request_id=str(uuid.uuid4()),
            issued_at=now_rfc3339(),
            duration_s=duration_s if verb is CommandVerb.UNLOCK else None,
        )
        await self._publish(topic_for(MessageKind.COMMAND, device_id), encode_message(command), 1)
        self._metrics.commands_sent.labels(verb.value).inc()
        return command

    # -- attestation ---------------------------------------------------------------------

    async def _attestation_response(
        self, response: AttestationResponse, message: RawMessage, entries: list[StreamEntry]
    ) -> None:
        self._registry.touch(response.device_id)
        verdict = await self._attestation.handle_response(response)
        entries.append(
            self._audit(
                "attestation_result",
                {
                    "device_id": response.device_id,
                    "nonce": response.nonce,
                    "status": verdict.status.value,
                    "reason": verdict.reason,
                },
                message.trace,
            )
        )
