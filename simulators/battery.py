"""CR2032 coin cell and nRF52840 radio cost model (pure arithmetic, no simpy).

Why a model and not the seed's slogan: seed 000 says MQTT's "2-byte overhead vs HTTP's
500+ bytes is the difference between months and days". The header bytes are a small part
of what a coin cell pays per message. What costs charge is (a) the time the radio is on,
transmitting *and listening*, (b) the TLS handshake a fresh HTTP connection needs (bytes
plus ECDHE/ECDSA computation), and (c) the sleep current between messages, which sets a
ceiling no protocol can beat. This module makes each of those a line item.

Assumptions (nRF52840 product specification v1.7, DC/DC on, 3 V, 0 dBm; IEEE 802.15.4 /
Thread 6LoWPAN link to a border router; CR2032 datasheets):

* radio 250 kbit/s, 32 us per byte; PHY header 6 bytes; PSDU <= 127 bytes; MAC header +
  FCS 11 bytes; every data frame is acknowledged by a 5-byte ACK after a 192 us turnaround;
* TX 4.8 mA, RX 4.6 mA, CPU 3.3 mA, CryptoCell-310 + CPU 4.8 mA, sleep (System ON, RTC,
  RAM retained, sensor idle) 3.0 uA;
* IPv6 header compressed to 10 bytes; TCP header 20 bytes (6LoWPAN does not compress TCP);
  6LoWPAN fragment headers 4 / 5 bytes, fragments in 8-byte units;
* while waiting for a reply the radio listens for one round trip (``rtt_s``);
* CR2032 225 mAh nominal; 80 % usable at the few-mA pulses of a radio (pulse load and the
  2.0 V cut-off leave the rest in the cell).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class Transport(StrEnum):
    """How a message reaches the backend."""

    MQTT = "mqtt"
    HTTP = "http"


@dataclass(frozen=True, slots=True)
class Radio:
    """IEEE 802.15.4 radio of the nRF52840 and its currents."""

    bitrate_bps: float = 250_000.0
    phy_overhead_bytes: int = 6
    max_psdu_bytes: int = 127
    mac_overhead_bytes: int = 11
    ack_psdu_bytes: int = 5
    turnaround_s: float = 192e-6
    frag1_header_bytes: int = 4
    fragn_header_bytes: int = 5
    tx_current_a: float = 4.8e-3
    rx_current_a: float = 4.6e-3
    cpu_current_a: float = 3.3e-3
    crypto_current_a: float = 4.8e-3
    sleep_current_a: float = 3.0e-6
    rtt_s: float = 0.050
    per_packet_cpu_s: float = 0.5e-3

    def airtime_s(self, psdu_bytes: int) -> float:
        """Time on air of one frame of ``psdu_bytes`` (PHY header included)."""
        return (self.phy_overhead_bytes + psdu_bytes) * 8 / self.bitrate_bps

    def frames(self, ip_bytes: int) -> list[int]:
        """PSDU sizes of the 802.15.4 frames carrying one IPv6 packet of ``ip_bytes``."""
        room = self.max_psdu_bytes - self.mac_overhead_bytes
        if ip_bytes <= room:
            return [ip_bytes + self.mac_overhead_bytes]
        first = (room - self.frag1_header_bytes) // 8 * 8
        rest = (room - self.fragn_header_bytes) // 8 * 8
        sizes = [first + self.frag1_header_bytes + self.mac_overhead_bytes]
        left = ip_bytes - first
        while left > 0:
            chunk = min(rest, left)
            sizes.append(chunk + self.fragn_header_bytes + self.mac_overhead_bytes)
            left -= chunk
        return sizes

    def _ack_s(self) -> float:
        return self.turnaround_s + self.airtime_s(self.ack_psdu_bytes)

    def packet_charge_c(self, ip_bytes: int, *, upstream: bool) -> float:
        """Charge to send (``upstream``) or receive one IPv6 packet, link ACKs included."""
        charge = 0.0
        for psdu in self.frames(ip_bytes):
            if upstream:
                charge += self.airtime_s(psdu) * self.tx_current_a
                charge += self._ack_s() * self.rx_current_a
            else:
                charge += self.airtime_s(psdu) * self.rx_current_a
                charge += self.turnaround_s * self.rx_current_a
                charge += self.airtime_s(self.ack_psdu_bytes) * self.tx_current_a
        return charge + self.per_packet_cpu_s * self.cpu_current_a

    def on_air_bytes(self, ip_bytes: int) -> int:
        """Bytes on air for one packet: every frame's PHY+MAC bytes and its ACK."""
        return sum(
            psdu + self.phy_overhead_bytes + self.ack_psdu_bytes + self.phy_overhead_bytes
            for psdu in self.frames(ip_bytes)
        )


@dataclass(frozen=True, slots=True)
class Packet:
    """One IPv6 packet of an exchange (compressed header included in ``ip_bytes``)."""

    upstream: bool
    ip_bytes: int
    what: str


@dataclass(frozen=True, slots=True)
class Exchange:
    """Everything on air to deliver one application message, with the waits it implies."""

    transport: Transport
    packets: tuple[Packet, ...]
    round_trips: int
    crypto_s: float

    @property
    def bytes_up(self) -> int:
        """IP bytes sent by the device."""
        return sum(p.ip_bytes for p in self.packets if p.upstream)

    @property
    def bytes_down(self) -> int:
        """IP bytes received by the device."""
        return sum(p.ip_bytes for p in self.packets if not p.upstream)

    def on_air_bytes(self, radio: Radio) -> int:
        """All bytes on air, both directions, link headers and ACKs included."""
        return sum(radio.on_air_bytes(p.ip_bytes) for p in self.packets)

    def charge_c(self, radio: Radio) -> float:
        """Coulombs drawn from the cell for this exchange."""
        charge = sum(radio.packet_charge_c(p.ip_bytes, upstream=p.upstream) for p in self.packets)
        charge += self.round_trips * radio.rtt_s * radio.rx_current_a
        return charge + self.crypto_s * radio.crypto_current_a


#: IPv6 (IPHC-compressed) + TCP headers of one segment.
IP_TCP_HEADER_BYTES = 10 + 20
#: A TLS 1.3 record: 5-byte header, 1-byte inner content type, 16-byte AEAD tag.
TLS_RECORD_OVERHEAD_BYTES = 5 + 1 + 16


def mqtt_publish_bytes(topic: str, payload_bytes: int, qos: int) -> int:
    """Size of an MQTT v5 PUBLISH packet (fixed header, topic, packet id, properties)."""
    variable = 2 + len(topic.encode()) + (2 if qos > 0 else 0) + 1
    remaining = variable + payload_bytes
    length_bytes = 1 if remaining < 128 else 2 if remaining < 16_384 else 3
    return 1 + length_bytes + remaining


def mqtt_exchange(topic: str, payload_bytes: int, qos: int = 1) -> Exchange:
    """One PUBLISH on an open mTLS session (the TLS handshake was paid once at connect).

    QoS 1 waits a round trip for the PUBACK (4 bytes in MQTT v5 on success) and ACKs its
    TCP segment; QoS 0 sends and goes back to sleep.
    """
    publish = mqtt_publish_bytes(topic, payload_bytes, qos)
    packets = [Packet(True, publish + TLS_RECORD_OVERHEAD_BYTES + IP_TCP_HEADER_BYTES, "PUBLISH")]
    round_trips = 0
    if qos > 0:
        packets.append(Packet(False, 4 + TLS_RECORD_OVERHEAD_BYTES + IP_TCP_HEADER_BYTES, "PUBACK"))
        packets.append(Packet(True, IP_TCP_HEADER_BYTES, "TCP ACK"))
        round_trips = 1
    return Exchange(Transport.MQTT, tuple(packets), round_trips, crypto_s=0.0)


@dataclass(frozen=True, slots=True)
class HttpProfile:
    """Byte counts of one HTTPS POST on a fresh connection with mutual TLS 1.3.

    The handshake sizes are those of P-256 certificates (a ~520-byte device certificate, a
    ~560-byte server certificate) with one intermediate-free chain; the CPU time is
    CryptoCell-310 ECDHE + one ECDSA sign (CertificateVerify) + two verifies.
    """

    syn_options_bytes: int = 12
    client_hello_bytes: int = 240
    server_flight_bytes: int = 1_080
    client_flight_bytes: int = 700
    session_tickets_bytes: int = 230
    request_header_bytes: int = 180
    response_bytes: int = 160
    close_notify_bytes: int = 24
    handshake_crypto_s: float = 0.060


def http_exchange(payload_bytes: int, profile: HttpProfile | None = None) -> Exchange:
    """One HTTPS POST of ``payload_bytes``: TCP open, TLS 1.3 mTLS handshake, request,
    response, close. Four round trips keep the radio listening (SYN, ClientHello, request,
    FIN)."""
    p = profile or HttpProfile()
    h = IP_TCP_HEADER_BYTES
    t = TLS_RECORD_OVERHEAD_BYTES
    packets = (
        Packet(True, h + p.syn_options_bytes, "SYN"),
        Packet(False, h + p.syn_options_bytes, "SYN-ACK"),
        Packet(True, h, "ACK"),
        Packet(True, h + p.client_hello_bytes, "ClientHello"),
        Packet(False, h + p.server_flight_bytes, "ServerHello..Finished"),
        Packet(True, h + p.client_flight_bytes, "Certificate, CertificateVerify, Finished"),
        Packet(True, h + t + p.request_header_bytes + payload_bytes, "POST"),
        Packet(False, h + p.session_tickets_bytes, "NewSessionTicket"),
        Packet(False, h + t + p.response_bytes, "201 Created"),
        Packet(True, h + p.close_notify_bytes, "close_notify + FIN"),
        Packet(False, h + p.close_notify_bytes, "close_notify + FIN"),
        Packet(True, h, "ACK"),
    )
    return Exchange(Transport.HTTP, packets, round_trips=4, crypto_s=p.handshake_crypto_s)


def exchange_for(transport: Transport, topic: str, payload_bytes: int, qos: int) -> Exchange:
    """The exchange that carries one message over ``transport``."""
    if transport is Transport.MQTT:
        return mqtt_exchange(topic, payload_bytes, qos)
    return http_exchange(payload_bytes)


@dataclass(frozen=True, slots=True)
class CoinCell:
    """A CR2032 lithium coin cell."""

    capacity_mah: float = 225.0
    usable_fraction: float = 0.80

    @property
    def usable_c(self) -> float:
        """Charge the load can actually draw, in coulombs."""
        return self.capacity_mah * 3.6 * self.usable_fraction


class Battery:
    """The cell's state of charge, drained by the board model."""

    def __init__(self, cell: CoinCell | None = None) -> None:
        self.cell = cell or CoinCell()
        self.used_c = 0.0

    @property
    def remaining_c(self) -> float:
        """Coulombs left before brown-out."""
        return max(0.0, self.cell.usable_c - self.used_c)

    @property
    def level_pct(self) -> float:
        """Remaining usable charge in percent (what the node reports)."""
        return 100.0 * self.remaining_c / self.cell.usable_c

    @property
    def empty(self) -> bool:
        """True once the usable charge is gone: the node browns out."""
        return self.used_c >= self.cell.usable_c

    def drain(self, charge_c: float) -> None:
        """Draw ``charge_c`` coulombs."""
        self.used_c += charge_c


def projected_days(
    cell: CoinCell,
    radio: Radio,
    messages_per_day: float,
    charge_per_message_c: float,
    extra_per_day_c: float = 0.0,
) -> float:
    """Days until brown-out at a steady rate (sleep current plus message charge)."""
    per_day = (
        radio.sleep_current_a * 86_400 + messages_per_day * charge_per_message_c + extra_per_day_c
    )
    return math.inf if per_day <= 0 else cell.usable_c / per_day
