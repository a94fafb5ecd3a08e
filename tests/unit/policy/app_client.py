"""An HTTP client of a whole backend app whose token verifier reads an in-memory JWKS of
``key`` (SQLite, no MQTT, no Redis): what the REST API and go-auth endpoint tests talk to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from backend.app import Backend, create_app
from backend.policy.tokens import TokenVerifier
from backend.settings import Settings
from bench.issuer import IssuerKey
from tests.unit.policy.test_tokens import ISSUER, FakeJwks


@asynccontextmanager
async def app_client(
    tmp_path: Path, key: IssuerKey, **settings: object
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a fresh app in ``tmp_path``; ``settings`` change the app's defaults."""
    app = create_app(
        Settings(
            site_id="a",
            mqtt_enabled=False,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'a.db'}",
            redis_url="redis://127.0.0.1:1/0",
            auth_jwks_url="http://issuer.test/certs",
            auth_issuer=ISSUER,
            **settings,  # type: ignore[arg-type]
        )
    )
    backend: Backend = app.state.backend
    assert backend.policy.verifier is not None
    verifier = TokenVerifier(backend.policy.verifier.settings, FakeJwks(key))
    backend.policy.verifier = backend.tokens = verifier
    await backend.store.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://site-a") as http:
            yield http
    finally:
        await backend.store.aclose()
