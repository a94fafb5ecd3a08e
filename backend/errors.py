"""Errors the backend raises on purpose (the contract package has its own tree).

Exception tree::

    BackendError
    ├── StartupError          a component could not start (which one, and what to check)
    ├── Unauthorized          no valid bearer token on the REST API (HTTP 401)
    ├── Forbidden             a valid token without the scope the endpoint needs (HTTP 403)
    ├── NotFound              an API resource does not exist (HTTP 404)
    │   └── DeviceNotRegistered   no device of that id has been heard from
    ├── Unavailable           a dependency (MQTT, Redis, database) is not connected (HTTP 503)
    └── InvalidRequest        an API request breaks a rule the schema cannot express (HTTP 422)
"""

from __future__ import annotations

from typing import Any


class BackendError(Exception):
    """Root of everything the backend raises on purpose.

    ``message`` is a sentence a person can act on; ``detail`` is optional structured data
    that the API returns beside it (``{"error": message, "detail": detail}``).
    """

    status_code = 500
    #: Extra response headers (``WWW-Authenticate`` on a 401).
    headers: dict[str, str] | None = None

    def __init__(self, message: str, detail: Any = None) -> None:
        self.message = message
        self.detail = detail
        super().__init__(message)


class StartupError(BackendError):
    """A component could not start; the message says which and what to check."""


class Unauthorized(BackendError):
    """No valid bearer token; the message says how to get one."""

    status_code = 401
    headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(BackendError):
    """The token is valid but lacks the scope the endpoint needs."""

    status_code = 403


class NotFound(BackendError):
    """The resource named in the request does not exist."""

    status_code = 404


class DeviceNotRegistered(NotFound):
    """A request names a device this site has never heard from (the API and attestation)."""

    def __init__(self, device_id: str) -> None:
        super().__init__(
            f"device {device_id!r} is not registered; a device appears after its first "
            "status message",
            {"device_id": device_id},
        )


class Unavailable(BackendError):
    """A dependency is not connected right now; retry once /healthz is green."""

    status_code = 503


class InvalidRequest(BackendError):
    """The request is well-formed JSON but asks for something not allowed."""

    status_code = 422
