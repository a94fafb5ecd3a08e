"""Errors of the policy service.

Exception tree::

    BackendError                 (backend.errors)
    └── PolicyError
        ├── InvalidRule          a rule cannot be built (bad filter, no subject, no action)
        └── BadAuthRequest       a /mqtt/* request body cannot be read (HTTP 400)
"""

from __future__ import annotations

from backend.errors import BackendError


class PolicyError(BackendError):
    """Root of everything the policy service raises on purpose."""


class InvalidRule(PolicyError):
    """An ACL rule is malformed; the message names the rule and the problem."""


class BadAuthRequest(PolicyError):
    """A mosquitto-go-auth request body is malformed; the message says what to send."""

    status_code = 400
