"""The site database: tables (:mod:`backend.store.models`), engine (:mod:`backend.store.db`)
and the queries the ingest and the API share (:mod:`backend.store.queries`)."""

from backend.store.db import Store, as_utc, async_database_url, iso, utcnow
from backend.store.models import (
    AccessGrant,
    Alert,
    AttestationChallenge,
    AttestationResult,
    AttestationStatus,
    Base,
    Device,
    TrustStatus,
)

__all__ = [
    "AccessGrant",
    "Alert",
    "AttestationChallenge",
    "AttestationResult",
    "AttestationStatus",
    "Base",
    "Device",
    "Store",
    "TrustStatus",
    "as_utc",
    "async_database_url",
    "iso",
    "utcnow",
]
