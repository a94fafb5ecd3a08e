"""Devices, operator commands and attestation challenges."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from backend.api.deps import ApiScope, BackendDep, api_access
from backend.contract import CommandVerb
from backend.errors import DeviceNotRegistered, InvalidRequest
from backend.store import Device, iso

router = APIRouter(
    prefix="/api/v1/cps/devices", tags=["devices"], dependencies=[api_access(ApiScope.OPERATE)]
)


def device_json(device: Device) -> dict[str, Any]:
    """The device as the API shows it (DESIGN.md, "Devices")."""
    return {
        "device_id": device.device_id,
        "device_type": device.device_type,
        "board_family": device.board_family,
        "firmware_stack": device.firmware_stack,
        "firmware_version": device.firmware_version,
        "firmware_hash": device.firmware_hash,
        "reported_hash": device.reported_hash,
        "trust_status": device.trust_status.value,
        "attestation_status": (
            device.attestation_status.value if device.attestation_status else None
        ),
        "risk_score": device.risk_score,
        "first_seen": iso(device.first_seen),
        "last_seen": iso(device.last_seen),
    }


async def _device(backend: BackendDep, device_id: str) -> Device:
    async with backend.store.sessionmaker() as session:
        device = await session.get(Device, device_id)
    if device is None:
        raise DeviceNotRegistered(device_id)
    return device


@router.get("")
async def list_devices(backend: BackendDep) -> dict[str, Any]:
    """Every registered device, by id."""
    await backend.registry.flush()
    async with backend.store.sessionmaker() as session:
        devices = (await session.scalars(select(Device).order_by(Device.device_id))).all()
    items = [device_json(device) for device in devices]
    return {"items": items, "count": len(items)}


@router.get("/{device_id}")
async def get_device(device_id: str, backend: BackendDep) -> dict[str, Any]:
    """One device."""
    await backend.registry.flush()
    return device_json(await _device(backend, device_id))


class CommandBody(BaseModel):
    """An operator command (``{"verb": "lockdown"}``)."""

    model_config = ConfigDict(extra="forbid")

    verb: str
    duration_s: int | None = Field(None, ge=1, le=3600)


@router.post("/{device_id}/commands", status_code=202)
async def send_command(device_id: str, body: CommandBody, backend: BackendDep) -> dict[str, Any]:
    """Publish a lock verb to a door (QoS 1)."""
    allowed = [verb.value for verb in CommandVerb]
    if body.verb not in allowed:
        raise InvalidRequest(
            f"unknown verb {body.verb!r}; allowed verbs: {', '.join(allowed)}",
            {"allowed": allowed},
        )
    await _device(backend, device_id)
    verb = CommandVerb(body.verb)
    duration = body.duration_s or backend.settings.unlock_duration_s
    command = await backend.pipeline.send_command(device_id, verb, duration)
    await backend.bus.add(
        backend.pipeline.audit_entry(
            "command_sent",
            {
                "device_id": device_id,
                "verb": verb.value,
                "request_id": command.request_id,
                "reason": "operator",
            },
        )
    )
    return {
        "device_id": device_id,
        "verb": verb.value,
        "request_id": command.request_id,
        "issued_at": command.issued_at,
        "duration_s": command.duration_s,
    }


@router.post("/{device_id}/attestations", status_code=202)
async def issue_attestation(device_id: str, backend: BackendDep) -> dict[str, Any]:
    """Send the device an attestation challenge; its response is verified on arrival."""
    issued = await backend.attestation.issue_challenge(device_id, backend.publish)
    return issued.as_json()


@router.get("/{device_id}/attestations")
async def list_attestations(device_id: str, backend: BackendDep, limit: int = 50) -> dict[str, Any]:
    """Stored attestation results of a device, newest first."""
    await _device(backend, device_id)
    items = await backend.attestation.results(device_id, max(1, min(limit, 500)))
    return {"items": items, "count": len(items)}
