"""MQTT clients of the figures, on the bench site's broker with a certificate of its PKI."""

from __future__ import annotations

from bench.load.clients import ClientTls, Publisher
from bench.perf.mqtt_lines import tls_client_args
from bench.perf.runner import PerfContext
from bench.pki import CertPair


def client_tls(ctx: PerfContext, pair: CertPair, client_id: str) -> ClientTls:
    """``pair`` (trusting the bench CA) connecting as ``client_id``."""
    return ClientTls(ca=ctx.pki.ca_cert, cert=pair.cert, key=pair.key, client_id=client_id)


def site_publisher(ctx: PerfContext, pair: CertPair, client_id: str) -> Publisher:
    """A paho publisher on the site's broker, not yet connected."""
    site = ctx.info.site(ctx.site_id)
    return Publisher(site.mqtt.host, site.mqtt.port, **client_tls(ctx, pair, client_id))


def tls_args(ctx: PerfContext, pair: CertPair, client_id: str) -> list[str]:
    """Connection arguments of the mosquitto C clients for the site (MQTT v5, mTLS, QoS 1)."""
    site = ctx.info.site(ctx.site_id)
    return tls_client_args(site.mqtt.host, site.mqtt.port, **client_tls(ctx, pair, client_id))
