"""Errors of the MQTT layer.

Exception tree::

    MqttError
    ├── ConnectFailed        TCP/TLS failed or the broker refused CONNECT (reason code kept)
    ├── ConnectionLost       an established connection ended (broker gone, DISCONNECT, keepalive)
    ├── ProtocolViolation    bytes that are not MQTT v5 (or a packet this layer does not speak)
    └── MqttTimeout          no answer (CONNACK, SUBACK, PUBACK) within the caller's time
"""

from __future__ import annotations


class MqttError(Exception):
    """Root of everything the MQTT layer raises on purpose."""


class ConnectFailed(MqttError):
    """The connection could not be set up; ``reason`` is the CONNACK code when there was one."""

    def __init__(self, message: str, reason: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class ConnectionLost(MqttError):
    """The connection ended; unacknowledged QoS 1 messages come again on a persistent session."""


class ProtocolViolation(MqttError):
    """The peer sent something that is not MQTT v5 as this layer speaks it."""


class MqttTimeout(MqttError):
    """The broker did not answer in time."""
