"""One client for the REST API of one site: every HTTP call a scenario makes goes here.

Built from :meth:`bench.benchfile.SiteInfo.api_client`, so it carries the site's bearer
token once the API requires one. Errors are translated where they enter: a refused
connection or an HTTP error status becomes a :class:`SiteCallError` that says which call,
at which site, and what the site answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from bench.benchfile import SiteInfo
from bench.errors import BenchError

HTTP_TIMEOUT_S = 10.0


class SiteCallError(BenchError):
    """A call to a site's API failed (unreachable, or answered with an error status)."""


class SiteClient:
    """The REST API of one site, in the words scenarios use (grants, alerts, commands).

    ``async with SiteClient(site) as api: ...`` or :meth:`aclose` (safe twice).
    """

    def __init__(self, site: SiteInfo, *, timeout_s: float = HTTP_TIMEOUT_S) -> None:
        self.site_id = site.site_id
        self._http = site.api_client(timeout=timeout_s)

    async def __aenter__(self) -> SiteClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        """One request; the decoded JSON answer (None when empty)."""
        try:
            response = await self._http.request(method, path, json=body)
        except httpx.HTTPError as error:
            raise SiteCallError(
                f"{method} {path} at site {self.site_id}: {type(error).__name__}: {error}"
            ) from None
        if response.status_code >= 400:
            raise SiteCallError(
                f"{method} {path} at site {self.site_id} answered {response.status_code}: "
                f"{response.text[:300]}"
            )
        return response.json() if response.content else None

    # -------------------------------------------------------------- grants

    async def grant(self, uid: str, doors: Sequence[str]) -> str:
        """Let badge ``uid`` open ``doors`` (``["*"]``: every door); the new grant's id."""
        created = await self.call(
            "POST", "/api/v1/cps/access/grants", {"uid": uid, "device_ids": list(doors)}
        )
        return str(created.get("id")) if isinstance(created, dict) else ""

    async def grants(self) -> list[dict[str, Any]]:
        """Every grant of the site."""
        listed = await self.call("GET", "/api/v1/cps/access/grants")
        items = listed.get("items", []) if isinstance(listed, dict) else []
        return [item for item in items if isinstance(item, dict)]

    async def revoke(self, grant_id: str) -> None:
        """Delete one grant."""
        await self.call("DELETE", f"/api/v1/cps/access/grants/{grant_id}")

    # -------------------------------------------------------------- devices and alerts

    async def command(self, device: str, verb: str) -> None:
        """An operator lock verb for ``device``."""
        await self.call("POST", f"/api/v1/cps/devices/{device}/commands", {"verb": verb})

    async def challenge(self, device: str) -> str | None:
        """Issue an attestation challenge; the nonce the backend sent."""
        answer = await self.call("POST", f"/api/v1/cps/devices/{device}/attestations")
        nonce = answer.get("nonce") if isinstance(answer, dict) else None
        return None if nonce is None else str(nonce)

    async def raise_alert(self, body: dict[str, Any]) -> Any:
        """Create an alert (``POST /api/v1/alerts``); the new alert's id."""
        created = await self.call("POST", "/api/v1/alerts", body)
        return created.get("id") if isinstance(created, dict) else None

    async def devices(self) -> list[dict[str, Any]]:
        """Every device the site knows."""
        listed = await self.call("GET", "/api/v1/cps/devices")
        items = listed.get("items", []) if isinstance(listed, dict) else listed
        return [item for item in items or [] if isinstance(item, dict)]

    async def topology(self) -> dict[str, Any]:
        """``/api/v1/system/topology``."""
        answer = await self.call("GET", "/api/v1/system/topology")
        return answer if isinstance(answer, dict) else {}

    async def metrics_text(self) -> str | None:
        """The Prometheus text of ``/metrics``, or None when the backend does not answer."""
        try:
            response = await self._http.get("/metrics")
        except httpx.HTTPError:
            return None
        return response.text if response.status_code == 200 else None
