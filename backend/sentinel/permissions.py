"""What a Sentinel client may do, as the ``permissions`` of its NATS user JWT (pure).

A client may subscribe to its own ``clients.<id>.alerts`` only and publish nothing. NATS
reads an *empty* allow list as "everything", so every list here is explicit and publish is
denied with ``>`` (DESIGN: auth callout). MQTT clients additionally need the subjects the
server's MQTT layer uses on their behalf: QoS 1 deliveries come from a JetStream consumer
whose deliver subject is ``$MQTT.sub.<nuid>`` (verified against nats-server 2.15 by
``tests/integration/test_sentinel.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from backend.sentinel.naming import alerts_subject

DENY_ALL = ">"
MQTT_DELIVERY = "$MQTT.sub.>"


class ClientType(StrEnum):
    """``client_info.type`` of an auth request: how the client speaks to the cluster."""

    NATS = "nats"
    MQTT = "mqtt"
    WEBSOCKET = "websocket"  # NATS protocol over WebSocket
    LEAFNODE = "leafnode"
    OTHER = "other"

    @classmethod
    def parse(cls, value: object) -> ClientType:
        """The type named in a request (``other`` for anything unexpected)."""
        try:
            return cls(str(value).lower())
        except ValueError:
            return cls.OTHER


@dataclass(frozen=True)
class Permissions:
    """Publish/subscribe allow and deny lists (NATS semantics: deny wins)."""

    pub_allow: tuple[str, ...] = ()
    pub_deny: tuple[str, ...] = ()
    sub_allow: tuple[str, ...] = ()
    sub_deny: tuple[str, ...] = ()

    def to_claims(self) -> dict[str, Any]:
        """The ``pub``/``sub`` members of a user JWT's ``nats`` claims."""
        claims: dict[str, Any] = {}
        for name, allow, deny in (
            ("pub", self.pub_allow, self.pub_deny),
            ("sub", self.sub_allow, self.sub_deny),
        ):
            entry: dict[str, list[str]] = {}
            if allow:
                entry["allow"] = list(allow)
            if deny:
                entry["deny"] = list(deny)
            claims[name] = entry
        return claims


def client_permissions(client_id: str, client_type: ClientType) -> Permissions:
    """Permissions of an allowed client: subscribe to its own alerts, publish nothing.

    Raises BadClientId for an id outside the device-id pattern (a subject token made of
    anything else could widen the grant, e.g. ``*`` or ``>``).
    """
    own = alerts_subject(client_id)
    if client_type is ClientType.MQTT:
        return Permissions(pub_deny=(DENY_ALL,), sub_allow=(own, MQTT_DELIVERY))
    return Permissions(pub_deny=(DENY_ALL,), sub_allow=(own,))


def subscription_allowed(permissions: Permissions, subject: str) -> bool:
    """Whether ``permissions`` let a client subscribe to the literal ``subject``.

    A small model of NATS matching (``*`` one token, ``>`` the rest) for tests and for the
    pipeline's auth verification; the server is the enforcer.
    """
    allowed = any(_matches(pattern, subject) for pattern in permissions.sub_allow)
    denied = any(_matches(pattern, subject) for pattern in permissions.sub_deny)
    return allowed and not denied


def _matches(pattern: str, subject: str) -> bool:
    want, have = pattern.split("."), subject.split(".")
    for index, part in enumerate(want):
        if part == ">":
            return len(have) > index
        if index >= len(have) or part not in ("*", have[index]):
            return False
    return len(want) == len(have)
