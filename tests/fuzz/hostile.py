"""Seeded hostile MQTT messages for every upstream contract topic, and valid ones to mix in.

Each hostile message carries the :class:`RejectReason` the contract must give it, computed
by the contract itself and checked in :mod:`tests.fuzz.test_contract_fuzz` to be a
rejection, so a test that counts rejections knows exactly what to expect.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass

from backend.contract import (
    ContractViolation,
    MessageKind,
    RejectReason,
    decode_upstream,
    topic_for,
)

UPSTREAM = [kind for kind in MessageKind if kind.upstream]


@dataclass(frozen=True, slots=True)
class Hostile:
    """A message the backend must refuse, and the reason it must give."""

    topic: str
    payload: bytes
    reason: RejectReason
    #: True when only an identity allowed to write ``aurora/#`` can publish it (the
    #: topic names another device than the publisher's certificate).
    foreign_topic: bool = False


def valid_payload(kind: MessageKind, device_id: str, n: int) -> bytes:
    """A contract-valid payload of ``kind``; ``n`` makes it unique."""
    body: dict[str, object]
    if kind is MessageKind.STATUS:
        body = {
            "device_type": "environmental_presence",
            "board_family": "esp32s3",
            "firmware_stack": "rust_embassy",
            "firmware_version": f"0.1.{n}",
            "device_id": device_id,
        }
    elif kind is MessageKind.TELEMETRY:
        body = {"device_id": device_id, "metric": "temperature_c", "value": n / 4, "unit": "C"}
    elif kind is MessageKind.ALERTS:
        body = {
            "device_id": device_id,
            "type": "sensor_unhealthy",
            "severity": "low",
            "event_details": f"fuzz {n}",
        }
    elif kind is MessageKind.BADGE_EVENT:
        body = {"device_id": device_id, "uid": f"{n:08X}"[-8:], "event": "badge_read"}
    else:
        body = {
            "device_id": device_id,
            "nonce": f"{n:032x}"[-32:],
            "firmware_hash": "ab" * 32,
            "signature": "AAAA",
            "certificate": "-----BEGIN CERTIFICATE-----",
        }
    return json.dumps(body, separators=(",", ":")).encode()


def _mutations(valid: bytes, device_id: str, rng: random.Random) -> list[bytes]:
    """Ways to break a valid payload, each a known class of attack or firmware bug."""
    text = valid.decode()
    depth = rng.randint(40, 1500)
    cut = rng.randint(1, len(valid) - 1)
    return [
        b"[" * depth + b"]" * depth,  # issue 11.1: RecursionError in the fallback
        text[:-1].encode() + b',"x":' + b"[" * depth + b"]" * depth + b"}",
        text[:-1].encode() + f',"device_id":"{device_id}"}}'.encode(),  # duplicate key
        ('{"device_id":"other-dev",' + text[1:]).encode(),  # duplicate, another id first
        valid[:cut],  # truncated
        valid + b" " * 4096,  # oversize
        text.replace(f'"{device_id}"', '"someone-else"').encode(),  # id mismatch
        text[:-1].encode() + b',"unknown":1}',
        b"\xff\xfe" + valid,  # not UTF-8
        text[:-1].encode() + b',"x":NaN}',
        b'"just a string"',
        b"null",
        b"",
        bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))),
        text.replace('"', "'").encode(),
        text.replace(":", ':"\\ud800', 1).encode(),  # lone surrogate escape
    ]


def hostile_messages(device_id: str, rng: random.Random) -> list[Hostile]:
    """One batch of hostile messages on ``device_id``'s own topics (all five kinds)."""
    out: list[Hostile] = []
    for kind in UPSTREAM:
        topic = topic_for(kind, device_id)
        for payload in _mutations(
            valid_payload(kind, device_id, rng.randrange(10**6)), device_id, rng
        ):
            reason = rejection(topic, payload)
            if reason is not None:  # a random mutation may happen to be valid: skip it
                out.append(Hostile(topic, payload, reason))
    # Kind-specific traps the seed leaves open (docs/architecture.md, wire decisions).
    status = json.loads(valid_payload(MessageKind.STATUS, device_id, 1))
    status["firmware_hash"] = None
    badge = json.loads(valid_payload(MessageKind.BADGE_EVENT, device_id, 1))
    badge["uid"] = "0455AF2"
    reading = json.loads(valid_payload(MessageKind.TELEMETRY, device_id, 1))
    traps = [(MessageKind.STATUS, status), (MessageKind.BADGE_EVENT, badge)]
    traps += [(MessageKind.TELEMETRY, {**reading, "value": bad}) for bad in (math.nan, math.inf)]
    for kind, body in traps:
        topic = topic_for(kind, device_id)
        payload = json.dumps(body).encode()  # Python writes NaN/Infinity: strict JSON does not
        reason = rejection(topic, payload)
        assert reason is not None
        out.append(Hostile(topic, payload, reason))
    return out


def foreign_topic_messages(rng: random.Random) -> list[Hostile]:
    """Messages on topics whose id label is not a valid device id (needs ``aurora/#``)."""
    out: list[Hostile] = []
    for label in ("b\u00e4d", "x" * 65, "a.b", "sp ace", "%00"):
        kind = rng.choice(UPSTREAM)
        prefix, suffix = topic_for(kind, "x").split("/")[1::2]
        topic = f"aurora/{prefix}/{label}/{suffix}"
        out.append(Hostile(topic, b"{}", RejectReason.BAD_DEVICE_ID, foreign_topic=True))
    return out


def rejection(topic: str, payload: bytes) -> RejectReason | None:
    """The contract's reason for refusing ``payload`` on ``topic``, or None if valid."""
    try:
        decode_upstream(topic, payload)
    except ContractViolation as violation:
        return violation.reason
    return None
