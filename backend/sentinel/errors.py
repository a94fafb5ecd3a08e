"""Errors the Sentinel raises on purpose.

Exception tree::

    SentinelError
    ├── BadClientId           a client id outside the device-id pattern
    └── BadAuthRequest        an auth-callout request that is not a valid, signed request
"""

from __future__ import annotations


class SentinelError(Exception):
    """Root of everything the Sentinel raises on purpose; the message says what is wrong."""


class BadClientId(SentinelError):
    """A client id outside the device-id pattern (``[A-Za-z0-9_-]{1,64}``)."""


class BadAuthRequest(SentinelError):
    """An auth-callout request that cannot be trusted or parsed (reason in the message)."""
