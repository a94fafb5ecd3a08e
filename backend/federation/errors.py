"""Errors of the federation package (tree in the package docstring)."""

from __future__ import annotations


class FederationError(Exception):
    """Root of everything the federation package raises on purpose."""


class FederationMessageError(FederationError):
    """A message on a federation subject that cannot be understood.

    The consumer terminates such a message (it would never parse on redelivery) and goes on.
    """

    def __init__(self, subject: str, reason: str) -> None:
        self.subject = subject
        self.reason = reason
        super().__init__(f"unreadable federation message on {subject!r}: {reason}")


class JetStreamSetupError(FederationError):
    """A stream or consumer could not be created or updated; the service retries."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(
            f"could not set up JetStream {what}: {reason} "
            "(check that nats-server runs with JetStream enabled and a domain)"
        )
