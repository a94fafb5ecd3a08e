"""What a connect sends and how its answer reads: pure, no I/O (used by ``MqttClient.connect``).

The first flight is sent with the client's TLS Finished in one write (over memory BIOs)
rather than after a turn of the event loop: MQTT 5.0 (3.1.4) lets a client send packets
after its CONNECT before the CONNACK, and a broker that refuses the CONNECT processes none
of them. A device's connect is then two round trips (TLS hello, Finished + CONNECT +
SUBSCRIBE) and two socket writes instead of four.
"""

from __future__ import annotations

from backend.mqtt.codec import ConnAck, Connect, Prop, Subscribe, encode
from backend.mqtt.errors import ConnectFailed
from backend.mqtt.options import ConnectOptions


def first_flight(options: ConnectOptions, subscribe_id: int | None) -> bytes:
    """CONNECT, and SUBSCRIBE to ``options.subscriptions`` under ``subscribe_id`` if given."""
    flight = encode(
        Connect(
            options.client_id,
            options.keepalive_s,
            options.clean_start,
            options.session_expiry_s,
            options.receive_maximum,
            options.will,
        )
    )
    if subscribe_id is not None:
        flight += encode(Subscribe(subscribe_id, tuple(options.subscriptions)))
    return flight


def connect_failure(options: ConnectOptions, error: Exception, connack_seen: bool) -> ConnectFailed:
    """The ConnectFailed for a connect that broke before its answers were complete."""
    if isinstance(error, TimeoutError):
        what = "no SUBACK in time" if connack_seen else "no CONNACK in time"
    else:
        what = str(error)
    return ConnectFailed(
        f"cannot connect to {options.host}:{options.port} as {options.client_id}: "
        f"{type(error).__name__}: {what}"
    )


def refusal(options: ConnectOptions, connack: ConnAck) -> ConnectFailed:
    """The ConnectFailed for a CONNACK with a failure reason code."""
    return ConnectFailed(
        f"broker {options.host}:{options.port} refused {options.client_id}: "
        f"reason {connack.reason}",
        connack.reason,
    )


def receive_maximum(connack: ConnAck) -> int | None:
    """The broker's receive maximum (QoS 1 publishes in flight), if it set one."""
    maximum = connack.properties.get(Prop.RECEIVE_MAXIMUM)
    return maximum if isinstance(maximum, int) and maximum > 0 else None


def keepalive_interval(connack: ConnAck, options: ConnectOptions) -> int:
    """Seconds between pings: the broker's server keep alive wins over what we asked."""
    keepalive = connack.properties.get(Prop.SERVER_KEEP_ALIVE)
    return keepalive if isinstance(keepalive, int) else options.keepalive_s
