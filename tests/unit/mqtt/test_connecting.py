"""The connect's pure parts: first flight, failure wording, the CONNACK's limits."""

from __future__ import annotations

from backend.mqtt.codec import ConnAck, Prop
from backend.mqtt.connecting import (
    connect_failure,
    first_flight,
    keepalive_interval,
    receive_maximum,
    refusal,
)
from backend.mqtt.options import ConnectOptions

OPTIONS = ConnectOptions("broker.test", 8883, "dev-1", keepalive_s=60)


def test_first_flight_is_connect_then_subscribe_when_asked() -> None:
    alone = first_flight(OPTIONS, None)
    with_sub = first_flight(
        ConnectOptions("broker.test", 8883, "dev-1", subscriptions=(("a/b", 1),)), 7
    )
    assert with_sub.startswith(alone[:1]) and len(with_sub) > len(alone)
    assert alone[0] >> 4 == 1  # CONNECT
    assert with_sub[len(alone)] >> 4 == 8  # SUBSCRIBE follows in the same bytes


def test_failures_say_what_was_missing() -> None:
    assert "no CONNACK in time" in str(connect_failure(OPTIONS, TimeoutError(), False))
    assert "no SUBACK in time" in str(connect_failure(OPTIONS, TimeoutError(), True))
    error = connect_failure(OPTIONS, OSError("refused"), False)
    assert "broker.test:8883 as dev-1: OSError: refused" in str(error)
    refused = refusal(OPTIONS, ConnAck(False, 135, {}))
    assert refused.reason == 135 and "reason 135" in str(refused)


def test_connack_limits_win_over_what_was_asked() -> None:
    plain = ConnAck(False, 0, {})
    limited = ConnAck(False, 0, {Prop.RECEIVE_MAXIMUM: 20, Prop.SERVER_KEEP_ALIVE: 30})
    assert receive_maximum(plain) is None and receive_maximum(limited) == 20
    assert keepalive_interval(plain, OPTIONS) == 60
    assert keepalive_interval(limited, OPTIONS) == 30
