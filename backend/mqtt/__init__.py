"""The project's one MQTT v5 layer: a pure codec, an asyncio client, the TLS context builder.

Used by the backend's ingest, the simulated devices' links, the serial bridge and the bench's
readiness check, so MQTT is written once. It imports nothing else of ours, which is why the
simulators and the hardware bridge may use it (import-linter contract, docs/architecture.md).

* :mod:`backend.mqtt.codec` — packets as values and their encoding to bytes, no I/O.
* :mod:`backend.mqtt.reader` — :class:`PacketReader`, bytes in any chunks to packets, no I/O.
* :mod:`backend.mqtt.client` — :class:`MqttClient`: manual acks, buffered reads, PUBACK
  reason codes, keepalive; the socket owned by an asyncio transport.
* :mod:`backend.mqtt.options` — :class:`ConnectOptions`, what a connection asks for.
* :mod:`backend.mqtt.tls_bio` — TLS over memory BIOs (small per-connection buffers).
* :mod:`backend.mqtt.tls` — :func:`client_tls_context`, TLS 1.3 minimum, for every client;
  :func:`resumable_session`, the ticket a device offers on its next connect.
* :mod:`backend.mqtt.errors` — :class:`MqttError` and its tree.
"""

from backend.mqtt.client import MqttClient
from backend.mqtt.codec import Publish, Will
from backend.mqtt.errors import (
    ConnectFailed,
    ConnectionLost,
    MqttError,
    MqttTimeout,
    ProtocolViolation,
)
from backend.mqtt.options import FAILURE, ConnectOptions
from backend.mqtt.tls import client_tls_context, resumable_session, session_alive

__all__ = [
    "FAILURE",
    "ConnectFailed",
    "ConnectOptions",
    "ConnectionLost",
    "MqttClient",
    "MqttError",
    "MqttTimeout",
    "ProtocolViolation",
    "Publish",
    "Will",
    "client_tls_context",
    "resumable_session",
    "session_alive",
]
