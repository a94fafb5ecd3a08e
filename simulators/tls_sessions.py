"""What a device keeps across connects to resume TLS: its context and its last ticket.

A real board keeps its TLS 1.3 session ticket in RAM (or flash) after its first connect and
offers it on every reconnect: the broker then skips the certificate exchange and the
signatures, the expensive part of a handshake on both ends. Python resumes a session only
with the :class:`ssl.SSLContext` that made it, so the store keeps both, per device.

What the broker does with a ticket (docs/architecture.md, Security): Mosquitto 2.0 issues
two per full handshake (lifetime 7,200 s), keeps the client certificate in the session, so
the ACL still sees the device's CN, and forgets its ticket key on every restart, so after a
broker restart every device falls back to a full handshake, which checks the CRL again.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from backend.mqtt import resumable_session, session_alive


@dataclass
class ResumptionCounts:
    """How a fleet's connects went: resumed from a ticket, or full handshakes."""

    resumed: int = 0
    full: int = 0
    #: Full handshakes although a ticket was offered (the broker forgot or refused it).
    offered_not_resumed: int = 0


class TlsSessions:
    """Per-device TLS context and resumable session, shared by every link of a fleet."""

    def __init__(self) -> None:
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._sessions: dict[str, ssl.SSLSession] = {}
        self.counts = ResumptionCounts()

    def context(self, device_id: str, build: ssl.SSLContext | None = None) -> ssl.SSLContext:
        """The device's context: the one kept, else ``build`` (kept from now on)."""
        kept = self._contexts.get(device_id)
        if kept is not None:
            return kept
        if build is None:
            raise KeyError(f"no TLS context kept for {device_id}")
        self._contexts[device_id] = build
        return build

    def session(self, device_id: str, context: ssl.SSLContext) -> ssl.SSLSession | None:
        """The session to offer on ``device_id``'s next connect with ``context``, if any."""
        session = self._sessions.get(device_id)
        if session is None or self._contexts.get(device_id) is not context:
            return None
        if not session_alive(session):
            del self._sessions[device_id]
            return None
        return session

    def connected(
        self,
        device_id: str,
        context: ssl.SSLContext,
        tls: ssl.SSLObject | None,
        *,
        offered: bool,
    ) -> bool:
        """Record a successful connect; keep its session for the next. True when resumed."""
        resumed = bool(tls is not None and tls.session_reused)
        if resumed:
            self.counts.resumed += 1
        else:
            self.counts.full += 1
            self.counts.offered_not_resumed += offered
        kept = self._sessions.get(device_id)
        if resumed and kept is not None and session_alive(kept, lifetime_share=0.5):
            # Keep offering the ticket that worked while it is young: reading the new one
            # costs ~0.3 ms (Python copies a session on every read, certificate and all, a
            # fifth of a resumed connect's client CPU), and OpenSSL takes a ticket again
            # within its lifetime. The price is linkability of the device's connections by
            # an observer, which RFC 8446 (C.4) warns of; a device fleet accepts it.
            return resumed
        session = resumable_session(tls)
        if session is not None:
            self._contexts.setdefault(device_id, context)
            if self._contexts[device_id] is context:
                self._sessions[device_id] = session
        return resumed

    def forget(self, device_id: str) -> None:
        """Drop ``device_id``'s session (the next connect is a full handshake)."""
        self._sessions.pop(device_id, None)

    def __len__(self) -> int:
        return len(self._sessions)
