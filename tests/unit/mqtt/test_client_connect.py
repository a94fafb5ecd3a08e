"""``MqttClient.connect`` against a scripted broker on loopback (plain TCP, no TLS).

A device's connect sends its SUBSCRIBE in the CONNECT's flight (MQTT 5.0, 3.1.4) and waits
for both acknowledgements: the broker sees both packets before it answered anything, a
refused CONNECT is reported with its reason (and no SUBACK awaited), a missing SUBACK
fails the connect.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from backend.mqtt import (
    ConnectFailed,
    ConnectionLost,
    ConnectOptions,
    MqttClient,
    MqttError,
    Publish,
)
from backend.mqtt.codec import ConnAck, SubAck, encode

CONNECT, SUBSCRIBE = 0x10, 0x82
FILTERS = (("aurora/commands/d1", 1), ("aurora/attestation/d1/request", 1))

#: What the scripted broker answers to the first bytes it got (None: nothing).
Answer = Callable[[bytes], bytes | None]


def _packet_types(data: bytes) -> list[int]:
    """First bytes of the packets in ``data`` (one-byte remaining lengths suffice here)."""
    types, pos = [], 0
    while pos < len(data):
        types.append(data[pos])
        pos += 2 + data[pos + 1]
    return types


class Broker:
    """Reads until CONNECT and SUBSCRIBE arrived (or 1 s passed), then answers once."""

    def __init__(self, answer: Answer, *, hang_up: bool = False) -> None:
        self.answer = answer
        #: Close the connection after the first bytes the client sends after the answer.
        self.hang_up = hang_up
        self.first_flight = b""
        #: Everything the client sent after the broker's answer.
        self.later = b""
        self.port = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = b""
        while _packet_types(data) != [CONNECT, SUBSCRIBE]:
            try:
                data += await asyncio.wait_for(reader.read(4096), 1.0)
            except TimeoutError:
                break
        self.first_flight = data
        reply = self.answer(data)
        if reply is not None:
            writer.write(reply)
        while chunk := await reader.read(4096):  # until the client closes
            self.later += chunk
            if self.hang_up:
                break
        writer.close()


@pytest.fixture
async def broker_for() -> AsyncIterator[Callable[..., Broker]]:
    """A scripted broker on a free loopback port; the test says how it answers."""
    brokers: list[Broker] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await brokers[-1].serve(reader, writer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)

    def started(answer: Answer, *, hang_up: bool = False) -> Broker:
        broker = Broker(answer, hang_up=hang_up)
        broker.port = server.sockets[0].getsockname()[1]
        brokers.append(broker)
        return broker

    yield started
    server.close()
    await server.wait_closed()


def _options(port: int, timeout_s: float = 5.0, keepalive_s: int = 60) -> ConnectOptions:
    return ConnectOptions(
        "127.0.0.1",
        port,
        "d1",
        keepalive_s=keepalive_s,
        timeout_s=timeout_s,
        subscriptions=FILTERS,
    )


async def test_subscribe_goes_in_the_connect_flight_and_its_suback_is_kept(
    broker_for: Callable[[Answer], Broker],
) -> None:
    broker = broker_for(lambda _data: encode(ConnAck(False, 0)) + encode(SubAck(1, (1, 0x87))))
    client = await MqttClient.connect(_options(broker.port))
    try:
        # Both packets reached the broker before it had sent anything back.
        assert _packet_types(broker.first_flight) == [CONNECT, SUBSCRIBE]
        assert client.subscribed == (1, 0x87)
        assert client.connack is not None and client.connack.reason == 0
    finally:
        await client.aclose()


async def test_a_refused_connect_reports_its_reason_without_waiting_for_a_suback(
    broker_for: Callable[[Answer], Broker],
) -> None:
    broker = broker_for(lambda _data: encode(ConnAck(False, 0x87)))
    with pytest.raises(ConnectFailed) as refused:
        await MqttClient.connect(_options(broker.port))
    assert refused.value.reason == 0x87


async def test_a_missing_suback_fails_the_connect(
    broker_for: Callable[[Answer], Broker],
) -> None:
    broker = broker_for(lambda _data: encode(ConnAck(False, 0)))
    with pytest.raises(ConnectFailed, match="no SUBACK in time"):
        await MqttClient.connect(_options(broker.port, timeout_s=0.5))


async def test_keepalive_pings_and_gives_up_on_a_silent_broker(
    broker_for: Callable[[Answer], Broker],
) -> None:
    broker = broker_for(lambda _data: encode(ConnAck(False, 0)) + encode(SubAck(1, (1, 1))))
    client = await MqttClient.connect(_options(broker.port, keepalive_s=1))
    try:
        # PINGREQ every half keepalive; no PINGRESP for 1.5 keepalives: the broker is gone.
        async with asyncio.timeout(5):
            error = await client.wait_closed()
        assert isinstance(error, ConnectionLost)
        assert "no packet from the broker in 1.5 s" in str(error)
        assert broker.later.startswith(bytes([0xC0, 0x00]))  # PINGREQ
    finally:
        await client.aclose()


async def test_deliver_to_hands_over_each_message_acks_it_and_reports_the_loss_once(
    broker_for: Callable[..., Broker],
) -> None:
    command = Publish("aurora/commands/d1", b'{"verb":"unlock"}', 1, 7)
    broker = broker_for(
        lambda _data: encode(ConnAck(False, 0)) + encode(SubAck(1, (1, 1))) + encode(command),
        hang_up=True,
    )
    client = await MqttClient.connect(_options(broker.port))
    delivered: list[Publish] = []
    lost: list[MqttError] = []
    try:
        client.deliver_to(delivered.append, lost.append)
        async with asyncio.timeout(5):
            await client.wait_closed()
        await asyncio.sleep(0)
        assert [(m.topic, m.payload, m.packet_id) for m in delivered] == [
            (command.topic, command.payload, 7)
        ]
        assert broker.later.startswith(bytes([0x40, 0x02, 0x00, 0x07]))  # its PUBACK
        assert len(lost) == 1 and isinstance(lost[0], ConnectionLost)
    finally:
        await client.aclose()
    assert len(lost) == 1  # closing afterwards reports nothing more
