"""Shared dependencies of the routers: the site's :class:`~backend.app.Backend`, and the
bearer-token check every REST endpoint but ``/healthz`` carries.

Scopes (JWTs from the site's token issuer, DESIGN.md "Policy service")::

    aurora.read      every GET
    aurora.operate   + commands, attestation challenges, alerts (and everything read may)
    aurora.admin     + access grants (and everything operate may)

No or a bad token is 401 with how to get one; a valid token without the scope is 403.
``/metrics`` stays open while ``AURORA_API_OPEN_METRICS`` is true (scrapers);
``AURORA_API_AUTH=false`` switches the check off for a closed lab network.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from backend.errors import Forbidden, Unauthorized
from backend.policy.errors import TokenRejected
from backend.policy.rules import Subject

if TYPE_CHECKING:
    from backend.app import Backend


def get_backend(request: Request) -> Backend:
    """The components of the site this request reached."""
    backend: Backend = request.app.state.backend
    return backend


BackendDep = Annotated["Backend", Depends(get_backend)]


class ApiScope(StrEnum):
    """What a token may do with the REST API; each scope includes the ones above it."""

    READ = "aurora.read"
    OPERATE = "aurora.operate"
    ADMIN = "aurora.admin"


_GRANTED_BY = {
    ApiScope.READ: frozenset(ApiScope),
    ApiScope.OPERATE: frozenset({ApiScope.OPERATE, ApiScope.ADMIN}),
    ApiScope.ADMIN: frozenset({ApiScope.ADMIN}),
}
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
HOW_TO_AUTHENTICATE = (
    "send 'Authorization: Bearer <token>'; get one with `aurora-bench token --sub <you> "
    "--scope aurora.operate` (aurora.read, aurora.operate or aurora.admin) or take "
    '"api_token" from <state-dir>/bench.json'
)
_bearer = HTTPBearer(
    auto_error=False,
    description="A JWT from the site's token issuer with scope aurora.read, "
    "aurora.operate or aurora.admin.",
)


def api_access(unsafe: ApiScope = ApiScope.READ) -> Any:
    """A dependency: GET needs ``aurora.read``, any other method needs ``unsafe``."""

    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Subject | None:
        backend = get_backend(request)
        settings = backend.settings
        if not settings.api_auth:
            return None
        if settings.api_open_metrics and request.url.path == "/metrics":
            return None
        needed = ApiScope.READ if request.method in _SAFE_METHODS else unsafe
        if credentials is None:
            raise Unauthorized(f"this endpoint needs a bearer token; {HOW_TO_AUTHENTICATE}")
        if backend.tokens is None:
            raise Unauthorized(
                "this site accepts no tokens: it has no token issuer configured "
                "(AURORA_AUTH_JWKS_URL; `aurora-bench up` sets it)"
            )
        try:
            subject = await backend.tokens.subject(credentials.credentials)
        except TokenRejected as error:
            raise Unauthorized(f"{error.message}; {HOW_TO_AUTHENTICATE}") from None
        if subject.scopes.isdisjoint(_GRANTED_BY[needed]):
            raise Forbidden(
                f"{request.method} {request.url.path} needs scope {needed.value}; the token "
                f"of {subject.describe()} does not carry it",
                {"needed": needed.value, "scopes": sorted(subject.scopes)},
            )
        return subject

    return Depends(check)
