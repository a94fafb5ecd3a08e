"""Drives every paho client of a locust process from gevent's event loop.

Scale: paho's own network loop uses ``select()``, which stops at ~330 TLS sockets per
process, silently (DESIGN.md, facts); ``locust.contrib.mqtt``'s ``use_loop_selectors`` lifts
the limit but still runs a thread (greenlet) per client building a new selector every
iteration, and starved a worker at ~700 devices here. gevent is here because locust runs
its users on it; nothing outside the locust processes imports this module.
"""

from __future__ import annotations

from typing import Any

import gevent
import paho.mqtt.client as mqtt

from bench.load.clients import no_delay


class GeventPump:
    """Drives every paho client of a locust process from gevent's own event loop.

    paho supports external loops through its socket callbacks: on socket open we start a
    libev read watcher that calls ``loop_read``; "register write" starts a write watcher that
    calls ``loop_write`` until paho says "unregister"; one greenlet calls ``loop_misc`` (keep
    alive) for all clients each second. No thread, no ``select()`` and no selector built per
    iteration, and one file descriptor per device (paho's wake-up socket pair exists only
    with its own loop) — which is what lets one process hold thousands of TLS devices.
    """

    def __init__(self) -> None:
        self._loop: Any = gevent.get_hub().loop
        self._readers: dict[mqtt.Client, Any] = {}
        self._writers: dict[mqtt.Client, Any] = {}
        self._misc = gevent.spawn(self._keepalive)

    def attach(self, client: mqtt.Client) -> None:
        """Install the socket callbacks on ``client`` (before ``connect``)."""
        client.on_socket_open = self._opened
        client.on_socket_close = self._closed
        client.on_socket_register_write = self._want_write
        client.on_socket_unregister_write = self._wrote_all

    def _opened(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        no_delay(client, userdata, sock)
        watcher = self._loop.io(sock.fileno(), 1)
        watcher.start(self._readable, client, sock)
        self._readers[client] = watcher

    def _closed(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        for watchers in (self._readers, self._writers):
            watcher = watchers.pop(client, None)
            if watcher is not None:
                watcher.stop()

    def _want_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if client in self._writers:
            return
        watcher = self._loop.io(sock.fileno(), 2)
        watcher.start(client.loop_write)
        self._writers[client] = watcher

    def _wrote_all(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        watcher = self._writers.pop(client, None)
        if watcher is not None:
            watcher.stop()

    @staticmethod
    def _readable(client: mqtt.Client, sock: Any) -> None:
        client.loop_read()
        # TLS may hold whole records already decrypted: the fd will not signal them again.
        while client.socket() is sock and getattr(sock, "pending", lambda: 0)() > 0:
            client.loop_read()

    def _keepalive(self) -> None:
        while True:
            gevent.sleep(1.0)
            for client in list(self._readers):
                client.loop_misc()

    def close(self) -> None:
        """Stop every watcher and the keep-alive greenlet (idempotent)."""
        self._misc.kill(block=False)
        for watchers in (self._readers, self._writers):
            for watcher in watchers.values():
                watcher.stop()
            watchers.clear()
