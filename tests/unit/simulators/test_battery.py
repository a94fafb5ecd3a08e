"""Battery and radio arithmetic against values computed by hand (see each comment)."""

import math

import pytest
import simpy

from simulators.battery import (
    CoinCell,
    Radio,
    Transport,
    http_exchange,
    mqtt_exchange,
    mqtt_publish_bytes,
    projected_days,
)
from simulators.boards import SentinelConfig, SentinelNode
from simulators.outbox import RecordingOutbox

RADIO = Radio()


def test_airtime_is_32_us_per_byte_with_6_byte_phy_header() -> None:
    # (6 + 20) bytes * 8 bit / 250 kbit/s = 832 us
    assert RADIO.airtime_s(20) == pytest.approx(832e-6)


def test_fragmentation_into_8_byte_units() -> None:
    # room = 127 - 11 = 116; 100 fits in one frame of 100 + 11.
    assert RADIO.frames(100) == [111]
    # 300: first fragment 112 (+4 FRAG1 +11), then 104 (+5 +11), then 84 (+5 +11).
    assert RADIO.frames(300) == [127, 120, 100]


def test_pure_tcp_ack_packet_charge() -> None:
    # TX (6+41)*32us*4.8mA = 7.2192 uC; ACK listen (192us + 11*32us)*4.6mA = 2.5024 uC;
    # CPU 0.5 ms * 3.3 mA = 1.65 uC.  Sum 11.3716 uC.
    assert RADIO.packet_charge_c(30, upstream=True) == pytest.approx(11.3716e-6)


def test_mqtt_publish_packet_size() -> None:
    # fixed 1 + length 1 + (topic len 2 + 26 + packet id 2 + properties 1) + payload 50
    assert mqtt_publish_bytes("aurora/sensors/x/telemetry", 50, qos=1) == 83
    # QoS 0 has no packet id.
    assert mqtt_publish_bytes("aurora/sensors/x/telemetry", 50, qos=0) == 81


def test_mqtt_qos1_exchange_charge_by_hand() -> None:
    exchange = mqtt_exchange("aurora/sensors/x/telemetry", 50, qos=1)
    assert exchange.bytes_up == 83 + 22 + 30 + 30
    assert exchange.bytes_down == 4 + 22 + 30
    # PUBLISH 135 B -> frames 127 + 39: TX 178*32us*4.8mA = 27.3408, 2 ACKs 5.0048, CPU 1.65
    # PUBACK 56 B -> 67: RX 73*32us*4.6mA = 10.7456, turnaround 0.8832, ACK TX 1.6896, CPU 1.65
    # TCP ACK 11.3716; one round trip listening 50 ms * 4.6 mA = 230.  Total 290.3356 uC.
    assert exchange.charge_c(RADIO) == pytest.approx(290.3356e-6)


def test_http_costs_far_more_per_message_than_mqtt() -> None:
    mqtt = mqtt_exchange("aurora/sensors/nrf52840-sentinel-01/telemetry", 80, qos=1)
    http = http_exchange(80)
    assert http.round_trips == 4
    assert http.on_air_bytes(RADIO) > 8 * mqtt.on_air_bytes(RADIO)
    assert http.charge_c(RADIO) > 5 * mqtt.charge_c(RADIO)


def test_coin_cell_and_sleep_floor() -> None:
    cell = CoinCell()
    assert cell.usable_c == pytest.approx(225 * 3.6 * 0.8)  # 648 C
    # 3 uA * 86400 s = 0.2592 C/day -> 648 / 0.2592 = 2500 days with no messages at all.
    assert projected_days(cell, RADIO, 0, 0) == pytest.approx(2500.0)
    assert projected_days(cell, Radio(sleep_current_a=0), 0, 0) == math.inf


def test_sentinel_drains_exactly_sleep_wake_and_radio() -> None:
    env = simpy.Environment()
    out = RecordingOutbox()
    node = SentinelNode(env, "nrf52840-sentinel-01", out, config=SentinelConfig(boot_jitter_s=0))
    node.start()
    env.run(until=86_400 + 1)
    wakes = 1440
    assert node.charge_by_item["wake"] == pytest.approx(wakes * (0.004 * 3.3e-3 + 4e-6))
    assert node.charge_by_item["sleep"] == pytest.approx(86_400 * 3e-6)
    per_message = sum(
        mqtt_exchange(m.topic, len(m.payload), m.qos).charge_c(RADIO) for m in out.messages
    )
    handshake = http_exchange(0).charge_c(RADIO)
    assert node.charge_by_item["radio"] == pytest.approx(per_message + handshake)
    assert node.battery.used_c == pytest.approx(sum(node.charge_by_item.values()))
    levels = [m for m in out.messages if b"battery_pct" in m.payload]
    assert len(levels) == wakes


def test_sentinel_browns_out_and_goes_silent() -> None:
    env = simpy.Environment()
    out = RecordingOutbox()
    config = SentinelConfig(cell=CoinCell(capacity_mah=0.05), interval_s=10, boot_jitter_s=0)
    node = SentinelNode(env, "nrf52840-sentinel-02", out, config=config)
    node.start()
    env.run(until=86_400)
    assert node.brownout_at_s is not None
    assert not node.powered
    assert out.presence_changes == [False]
    assert all(m.at_s <= node.brownout_at_s for m in out.messages)


def test_http_transport_drains_faster_in_simulation() -> None:
    used = {}
    for transport in Transport:
        env = simpy.Environment()
        node = SentinelNode(
            env,
            "nrf52840-sentinel-03",
            RecordingOutbox(),
            config=SentinelConfig(transport=transport),
        )
        node.start()
        env.run(until=6 * 3600)
        used[transport] = node.battery.used_c
    assert used[Transport.HTTP] > 3 * used[Transport.MQTT]
