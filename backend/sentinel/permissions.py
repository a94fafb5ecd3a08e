"""What a Sentinel client may do, as the ``permissions`` of its NATS user JWT (pure).

A client may subscribe to its own ``clients.<id>.alerts`` only and publish nothing. NATS
reads an *empty* allow list as "everything", so every list here is explicit and publish is
denied with ``>`` (DESIGN: auth callout). MQTT clients need nothing more: the server's MQTT
layer subscribes its QoS 1 deliver subjects (``$MQTT.sub.<nuid>``) internally. Verified on
nats-server 2.15.1: a user allowed only ``clients.c1.alerts`` gets SUBACK QoS 1 and both a
NATS-published (QoS 0) and an MQTT QoS 1 alert. Granting ``$MQTT.sub.>`` would be a hole:
an MQTT client could subscribe to ``$MQTT/sub/#`` and read other clients' deliveries.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from backend.sentinel.naming import alerts_subject

DENY_ALL = ">"


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
    del client_type  # the same for every protocol (see the module doc)
    return Permissions(pub_deny=(DENY_ALL,), sub_allow=(alerts_subject(client_id),))


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
