"""Errors of the policy service.

Exception tree::

    BackendError                 (backend.errors)
    └── PolicyError
        ├── InvalidRule          a rules file cannot be used (file, JSON path, problem)
        ├── BadAuthRequest       a /mqtt/* request body cannot be read (HTTP 400)
        └── TokenRejected        a JWT is missing, malformed, expired, of the wrong issuer,
                                 audience or key, or its JWKS is unreachable (HTTP 401)
"""

from __future__ import annotations

from backend.errors import BackendError


class PolicyError(BackendError):
    """Root of everything the policy service raises on purpose."""


class InvalidRule(PolicyError):
    """A rules file is malformed; the message names the file, the JSON path and the problem."""


class BadAuthRequest(PolicyError):
    """A mosquitto-go-auth request body is malformed; the message says what to send."""

    status_code = 400


class TokenRejected(PolicyError):
    """A bearer token cannot be accepted; the message says why."""

    status_code = 401
