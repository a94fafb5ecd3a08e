"""Shared dependencies of the routers: the app's :class:`~backend.app.Backend`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

if TYPE_CHECKING:
    from backend.app import Backend


def get_backend(request: Request) -> Backend:
    """The components of the site this request reached."""
    backend: Backend = request.app.state.backend
    return backend


BackendDep = Annotated["Backend", Depends(get_backend)]
