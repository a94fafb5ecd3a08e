"""Connect latency of token clients: TLS, CONNECT with a JWT, the plugin's ``/mqtt/user``.

Part of the ``policy_mqtt`` measurement, against the running site (not a stand-in): each
connect opens TLS to the site's token listener, sends MQTT 5 CONNECT with a fresh token
as the password and waits for CONNACK, so every one crosses the plugin (no cached
decision for a new password) to the site's policy service, which verifies the token's
ES256 signature (no verified-token cache entry for a new token). The connects are one
after the other, the latency from opening the socket to CONNACK.

Figures (goal p99 <= 5 ms, issue #12):

* ``policy_mqtt.connect_jwt.p99`` / ``.p50`` — baseline: mTLS connects of a device to the
  same broker's certificate listener in the same run (TLS with a client certificate, no
  plugin call: Mosquitto authenticates those itself);
* ``policy_mqtt.connect_jwt_cached.p99`` — the same token every time, so the plugin
  answers from its decision cache: what the HTTP round trip and the JWT check add is the
  difference to the figure above.

The client is a few lines of asyncio (the CONNECT packet built here) so the figure is the
broker's and the service's, not a client library's.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Sequence
from pathlib import Path

from bench.errors import BenchError
from bench.issuer import TokenIssuer
from bench.load.summary import percentile_of
from bench.perf.figures import Figure
from bench.pki import Pki

GOAL_P99_MS = 5.0
CONNECTS = 300
QUICK_CONNECTS = 30
DEVICE = "esp32s3-perf-connect"
CONNECT_TIMEOUT_S = 10.0


def _utf8(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        value, digit = divmod(value, 128)
        out.append(digit | (0x80 if value else 0))
        if not value:
            return bytes(out)


def connect_packet(
    client_id: str, username: str | None = None, password: str | None = None
) -> bytes:
    """An MQTT 5 CONNECT (clean start, keep-alive 60 s, no properties)."""
    flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    variable = _utf8("MQTT") + bytes([5, flags]) + (60).to_bytes(2, "big") + _varint(0)
    payload = _utf8(client_id)
    if username is not None:
        payload += _utf8(username)
    if password is not None:
        payload += _utf8(password)
    body = variable + payload
    return b"\x10" + _varint(len(body)) + body


async def _read_packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    kind = (await reader.readexactly(1))[0]
    length, shift = 0, 0
    while True:
        byte = (await reader.readexactly(1))[0]
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    return kind, await reader.readexactly(length)


async def connect_once(
    host: str, port: int, context: ssl.SSLContext, packet: bytes
) -> tuple[float, int]:
    """Milliseconds from opening the socket to CONNACK, and CONNACK's reason code."""
    began = time.perf_counter()
    async with asyncio.timeout(CONNECT_TIMEOUT_S):
        reader, writer = await asyncio.open_connection(host, port, ssl=context)
        try:
            writer.write(packet)
            kind, body = await _read_packet(reader)
            elapsed_ms = (time.perf_counter() - began) * 1000.0
            if kind >> 4 != 2 or len(body) < 2:
                raise BenchError(f"expected CONNACK, got packet type {kind >> 4}")
            writer.write(b"\xe0\x00")  # DISCONNECT, normal
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()
    return elapsed_ms, body[1]


async def _series(
    host: str, port: int, context: ssl.SSLContext, packets: Sequence[bytes], what: str
) -> list[float]:
    latencies = []
    for packet in packets:
        elapsed_ms, reason = await connect_once(host, port, context, packet)
        if reason != 0:
            raise BenchError(f"{what}: CONNACK reason {reason} (refused)")
        latencies.append(elapsed_ms)
    return latencies


def _p(values: list[float], q: float) -> float:
    value = percentile_of(values, q)
    if value is None:
        raise BenchError("no connect was measured")
    return value


async def measure_connects(
    pki: Pki,
    issuer: TokenIssuer,
    token_listener: tuple[str, int],
    cert_listener: tuple[str, int],
    quick: bool = False,
) -> list[Figure]:
    """The connect figures (see the module docstring)."""
    count = QUICK_CONNECTS if quick else CONNECTS
    tokens = [
        issuer.mint(sub=f"svc-perf-{index}", scopes=["mqtt.write"], ttl_s=600)
        for index in range(count)
    ]
    fresh = [
        connect_packet(f"perf-jwt-{index}", f"svc-perf-{index}", token)
        for index, token in enumerate(tokens)
    ]
    same = [connect_packet("perf-jwt-cached", "svc-perf-0", tokens[0])] * count
    server = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki.ca_cert))
    pair = pki.device(DEVICE)
    mutual = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki.ca_cert))
    mutual.load_cert_chain(str(Path(pair.cert)), str(Path(pair.key)))
    device = [connect_packet(DEVICE)] * count
    # A warm-up of each kind: the first TLS handshake loads certificates and keys.
    await _series(*token_listener, server, fresh[:1], "token warm-up")
    await _series(*cert_listener, mutual, device[:1], "device warm-up")
    jwt = await _series(*token_listener, server, fresh[1:], "token client")
    cached = await _series(*token_listener, server, same, "token client, cached")
    certificate = await _series(*cert_listener, mutual, device, "device")
    note = (
        f"{len(jwt)} connects one after the other, each with a new token (plugin -> "
        "/mqtt/user -> ES256 verified); baseline: mTLS device connects to the same broker; "
        f"goal p99 <= {GOAL_P99_MS:g} ms"
    )
    return [
        Figure("policy_mqtt.connect_jwt.p99", _p(jwt, 0.99), "ms", _p(certificate, 0.99), note),
        Figure("policy_mqtt.connect_jwt.p50", _p(jwt, 0.50), "ms", _p(certificate, 0.50)),
        Figure(
            "policy_mqtt.connect_jwt_cached.p99",
            _p(cached, 0.99),
            "ms",
            _p(certificate, 0.99),
            note="the same token each time: the plugin's decision cache answers",
        ),
    ]
