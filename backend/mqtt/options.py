"""What a client asks of the broker and of its connection (:class:`ConnectOptions`)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from backend.mqtt.codec import Will

#: Reason codes below this are success (MQTT 5.0, 2.4).
FAILURE = 0x80


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """How to reach the broker and what to ask of the session."""

    host: str
    port: int
    client_id: str
    tls: ssl.SSLContext | None = None
    keepalive_s: int = 60
    #: False with a ``session_expiry_s`` > 0: a persistent session (DESIGN.md, Delivery).
    clean_start: bool = True
    session_expiry_s: int = 0
    #: How many unacknowledged QoS 1 messages the broker may have in flight towards us.
    receive_maximum: int | None = None
    will: Will | None = None
    #: PUBACK received QoS 1 messages only through :meth:`MqttClient.ack`.
    manual_ack: bool = False
    timeout_s: float = 10.0
    #: TLS in this object over memory BIOs (a few KiB per connection) rather than the event
    #: loop's SSL transport (a 256 KiB read buffer per connection, but uvloop's is compiled):
    #: True for the many small links of a device fleet, False for one busy consumer.
    tls_over_bio: bool = True
    #: A TLS session of an earlier connection with the same ``tls`` context, offered for
    #: resumption (TLS 1.3 ticket; see :mod:`backend.mqtt.tls`). Over memory BIOs only.
    tls_session: ssl.SSLSession | None = None
    #: ``(filter, qos)`` pairs subscribed in the CONNECT's flight (a device's downward
    #: topics); :meth:`MqttClient.connect` returns once their SUBACK came.
    subscriptions: tuple[tuple[str, int], ...] = ()
