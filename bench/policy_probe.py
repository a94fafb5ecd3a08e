"""Helpers to drive a broker's token listener and to stand in for a policy service.

Used by the plugin's integration tests and by ``make bench`` (``bench.perf.policy``):

* :class:`FakePolicyService` — a tiny mosquitto-go-auth HTTP backend whose answers, delay
  and liveness a test controls, recording every request it gets;
* :func:`token_client` — a paho MQTT v5 client on the token listener (server-auth TLS,
  token as password) that reports CONNACK, PUBACK and SUBACK reason codes;
* :func:`start_policy_broker` — a Mosquitto with the site's config (mTLS listener, and the
  token listener with the plugin when a policy service port is given), outside any site.
"""

from __future__ import annotations

import json
import os
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from bench.errors import BenchError
from bench.pki import Pki
from bench.services.auth_plugin import ensure_plugin
from bench.services.config import (
    PROBE_IDENTITY,
    MosquittoConfig,
    PolicyListener,
    backend_identity,
    mosquitto_acl,
    mosquitto_conf,
)
from bench.services.local import LOOPBACK, mqtt_accepts
from bench.services.process import Service, ServiceSpec, find_binary, free_port, tcp_accepts


@dataclass(frozen=True)
class PolicyRequest:
    """One request the fake policy service received."""

    path: str
    content_type: str
    fields: dict[str, Any]


@dataclass
class PolicyBehaviour:
    """What the fake answers: an HTTP status per path (default 200) after ``delay_s``."""

    status: dict[str, int] = field(default_factory=dict)
    delay_s: float = 0.0
    #: Body for 2xx answers; None: go-auth's JSON ``{"ok": true, "error": ""}``.
    body: bytes | None = None
    #: Refuse (403) the requests this predicate picks: ``refuse(path, fields)``.
    refuse: Callable[[str, dict[str, Any]], bool] | None = None


class FakePolicyService:
    """A mosquitto-go-auth HTTP backend on loopback that a test steers."""

    def __init__(self) -> None:
        self.behaviour = PolicyBehaviour()
        self.requests: list[PolicyRequest] = []
        self._lock = threading.Lock()
        self._closed = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        """The TCP port it listens on."""
        return int(self._server.server_address[1])

    def start(self) -> FakePolicyService:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving: new connections are refused, kept-alive ones get no answer."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def taken(self) -> list[PolicyRequest]:
        """The requests so far, and forget them."""
        with self._lock:
            out, self.requests = self.requests, []
        return out

    def _record(self, request: PolicyRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Buffered writes: unbuffered, Nagle + delayed ACK cost ~44 ms per answer
            # (DESIGN.md, facts verified for the plugin).
            wbufsize = 65536

            def do_POST(self) -> None:
                if service._closed:
                    # A kept-alive connection outlives the listening socket: hang up.
                    self.close_connection = True
                    return
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                content_type = self.headers.get("Content-Type", "")
                fields: dict[str, Any]
                if content_type.startswith("application/json"):
                    fields = json.loads(raw)
                else:
                    fields = dict(
                        parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=True)
                    )
                service._record(PolicyRequest(self.path, content_type, fields))
                behaviour = service.behaviour
                if behaviour.delay_s:
                    time.sleep(behaviour.delay_s)
                status = behaviour.status.get(self.path, 200)
                if behaviour.refuse is not None and behaviour.refuse(self.path, fields):
                    status = 403
                ok = 200 <= status < 300
                body = behaviour.body if ok and behaviour.body is not None else None
                if body is None:
                    body = json.dumps({"ok": ok, "error": "" if ok else "denied"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


class TokenClient:
    """A connected paho client; reason codes of its last PUBACK / SUBACK are recorded."""

    def __init__(self, client: Any, timeout_s: float) -> None:
        self.client = client
        self.timeout_s = timeout_s
        self.connack = -1
        self.connected = threading.Event()
        self._acks: dict[int, list[int]] = {}
        self._acked = threading.Condition()
        self.messages: list[tuple[str, bytes]] = []

    def _ack(self, mid: int, codes: list[int]) -> None:
        with self._acked:
            self._acks[mid] = codes
            self._acked.notify_all()

    def _wait(self, mid: int, what: str) -> list[int]:
        with self._acked:
            if not self._acked.wait_for(lambda: mid in self._acks, self.timeout_s):
                raise BenchError(f"no {what} in {self.timeout_s} s")
            return self._acks.pop(mid)

    def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> int:
        """Publish at QoS 1 and return the PUBACK reason code (135: not authorized)."""
        info = self.client.publish(topic, payload, qos=qos)
        return self._wait(info.mid, f"PUBACK for {topic}")[0]

    def subscribe(self, topic_filter: str, qos: int = 1) -> int:
        """Subscribe and return the SUBACK reason code (>= 128: refused)."""
        _, mid = self.client.subscribe(topic_filter, qos=qos)
        return self._wait(mid, f"SUBACK for {topic_filter}")[0]


@contextmanager
def token_client(
    host: str,
    port: int,
    ca: Path,
    *,
    username: str | None,
    password: str | None,
    client_id: str,
    client_cert: tuple[Path, Path] | None = None,
    session_expiry_s: int | None = None,
    timeout_s: float = 10.0,
) -> Iterator[TokenClient]:
    """Connect (MQTT v5, TLS trusting ``ca``) and yield the client, CONNACK or not.

    Check ``connack`` (0 accepted, 134/135 refused) before using it. ``session_expiry_s``
    resumes (or starts) a persistent session instead of a clean one.
    """
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    if client_cert is not None:
        context.load_cert_chain(str(client_cert[0]), str(client_cert[1]))
    client.tls_set_context(context)
    if username is not None:
        client.username_pw_set(username, password)
    wrapper = TokenClient(client, timeout_s)

    def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        wrapper.connack = int(reason.value)
        wrapper.connected.set()

    def on_publish(client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        wrapper._ack(mid, [int(reason.value)])

    def on_subscribe(client: Any, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        wrapper._ack(mid, [int(r.value) for r in reasons])

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        wrapper.messages.append((message.topic, message.payload))

    client.on_connect = on_connect
    client.on_publish = on_publish
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    if session_expiry_s is None:
        client.connect(host, port)
    else:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = session_expiry_s
        client.connect(host, port, clean_start=False, properties=properties)
    client.loop_start()
    try:
        if not wrapper.connected.wait(timeout_s):
            raise BenchError(f"no CONNACK from {host}:{port} in {timeout_s} s")
        yield wrapper
    finally:
        client.disconnect()
        client.loop_stop()


@dataclass
class PolicyBroker:
    """A started Mosquitto: ``token_port`` is None without the plugin (ACL file only)."""

    pki: Pki
    mqtt_port: int
    token_port: int | None
    log: Path
    service: Service

    def log_text(self) -> str:
        """The broker's log so far."""
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """Stop the broker (safe to call twice)."""
        self.service.stop()


def start_policy_broker(
    directory: Path,
    pki: Pki,
    http_port: int | None,
    *,
    debug_log: bool = False,
    **policy_options: Any,
) -> PolicyBroker:
    """Mosquitto as a site runs it, for backend identity ``aurora-backend-t``.

    With ``http_port`` the token listener and the plugin asking ``http_port`` (options as
    :class:`~bench.services.config.PolicyListener`); without, the broker applies the ACL
    file itself, as before the plugin existed (the baseline the bench compares with).
    """
    directory.mkdir(parents=True, exist_ok=True)
    acl = directory / "acl"
    acl.write_text(mosquitto_acl([backend_identity("t")]))
    mqtt_port = free_port()
    token_port = free_port() if http_port is not None else None
    policy = None
    if http_port is not None and token_port is not None:
        policy = PolicyListener(
            port=token_port, plugin=ensure_plugin(), http_port=http_port, **policy_options
        )
    conf = directory / "mosquitto.conf"
    log = directory / "mosquitto.log"
    text = mosquitto_conf(
        MosquittoConfig(
            port=mqtt_port,
            ca=pki.ca_cert,
            server=pki.server("mosquitto-t"),
            acl_file=acl,
            persistence_dir=directory,
            log_file=log,
            run_as_root=os.geteuid() == 0,
            policy=policy,
        )
    )
    if debug_log:
        text += "log_type debug\n"
    conf.write_text(text)
    probe = pki.service(PROBE_IDENTITY)

    def ready() -> bool:
        return mqtt_accepts(LOOPBACK, mqtt_port, pki.ca_cert, probe) and (
            token_port is None or tcp_accepts(LOOPBACK, token_port)
        )

    service = Service(
        ServiceSpec(
            name="mosquitto-policy",
            command=[find_binary("mosquitto"), "-c", str(conf)],
            log=log,
            ready=ready,
            port=mqtt_port,
            cwd=directory,
        )
    )
    service.start()
    return PolicyBroker(pki, mqtt_port, token_port, log, service)
