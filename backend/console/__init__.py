"""The operator console: a live page per site, served by the site's backend at ``/``.

``feed`` turns the site's Redis streams and federation state into console events (pure);
``router`` serves the page, its assets (no CDN: everything ships in ``static/``) and the
server-sent event stream the page follows. The page calls the same authenticated REST API
as any script: operator actions are ``POST /api/v1/cps/devices/{id}/commands`` and
``.../attestations``, and their effect comes back as the audit event that follows.
"""

from backend.console.router import console_router

__all__ = ["console_router"]
