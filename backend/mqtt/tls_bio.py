"""TLS over memory BIOs on a plain TCP transport (:class:`TlsBio`), pure of I/O.

asyncio's and uvloop's SSL transports keep a 256 KiB read buffer per connection, which made
10,000 device links in one process cost 3 GiB; an :class:`ssl.SSLObject` reads only what
arrived. The client feeds received bytes in and writes out whatever this object says must
go to the peer; errors come back as :class:`~backend.mqtt.errors.MqttError` values.
"""

from __future__ import annotations

import ssl

from backend.mqtt.errors import ConnectFailed, ConnectionLost, MqttError


class TlsBio:
    """One client-side TLS session over a pair of memory BIOs."""

    def __init__(
        self,
        context: ssl.SSLContext,
        server_hostname: str,
        session: ssl.SSLSession | None = None,
    ) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        # ``session``: a ticket of an earlier connection made with ``context`` to resume.
        self._tls = context.wrap_bio(
            self._in, self._out, server_hostname=server_hostname, session=session
        )
        self.handshake_done = False

    @property
    def ssl_object(self) -> ssl.SSLObject:
        """The session's TLS object (``session``, ``session_reused``, the peer's cert)."""
        return self._tls

    def handshake(self) -> MqttError | None:
        """Advance the handshake with what was fed; an error ends the connection."""
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            return None
        except ssl.SSLError as error:
            return ConnectFailed(f"TLS handshake failed: {error}")
        self.handshake_done = True
        return None

    def outgoing(self) -> bytes:
        """Bytes the peer must get now (handshake records, key updates, encrypted data)."""
        return self._out.read()

    def decrypt(self, data: bytes) -> bytes | MqttError:
        """Feed ``data`` from the socket; the plain bytes it completes (or why it failed).

        During the handshake nothing plain comes out: call :meth:`handshake` and check
        :attr:`handshake_done`.
        """
        self._in.write(data)
        chunks: list[bytes] = []
        try:
            while True:
                chunk = self._tls.read(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as error:  # an alert (e.g. a refused client certificate)
            return ConnectionLost(f"TLS: {error}")
        return b"".join(chunks)

    def feed_handshake(self, data: bytes) -> None:
        """Feed handshake records received from the socket (then call :meth:`handshake`)."""
        self._in.write(data)

    def encrypt(self, data: bytes) -> bytes | MqttError:
        """The records carrying ``data`` (or why the session cannot send)."""
        try:
            self._tls.write(data)
        except ssl.SSLError as error:
            return ConnectionLost(f"TLS failed: {error}")
        return self._out.read()
