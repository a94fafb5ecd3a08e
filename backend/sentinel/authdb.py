"""The Auth DB (seed 003: "the customer's Auth DB"): the ``sentinel_clients`` table and the
allow/deny decision.

Passwords are stored as argon2id hashes (argon2-cffi). A KDF is slow on purpose, and the
seed wants auth p99 < 10 ms, so the callouts remember successful checks
(:mod:`backend.sentinel.authcache`, the seed's per-region "Auth Cache") and drop them when
:meth:`AuthDb.changed_since` reports the client's row changed (disabled, new password).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import argon2
from sqlalchemy import Boolean, DateTime, String, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backend.sentinel.errors import SentinelError
from backend.sentinel.naming import check_client_id
from backend.store.db import Store, utcnow

#: The seed's regions; a client's home region (where its subscribers connect).
REGIONS = ("us-east", "eu-west", "ap-south")
#: argon2id with OWASP's m=19 MiB, t=2 profile: one check costs tens of ms on this machine,
#: so repeats are answered by the cache (``make bench`` reports cold and warm connects).
_HASHER = argon2.PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
MAX_PASSWORD_CHARS = 256


class Base(DeclarativeBase):
    """The Sentinel's tables (created next to the site's, in the site database)."""


class SentinelClientRow(Base):
    """One Sentinel client: who may subscribe to ``clients/<client_id>/alerts``."""

    __tablename__ = "sentinel_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    region: Mapped[str] = mapped_column(String(16), default="us-east")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: Indexed: the callouts poll it to drop cached credentials of changed rows.
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


@dataclass(frozen=True)
class ClientRecord:
    """What a decision needs from a row."""

    client_id: str
    password_hash: str
    enabled: bool
    region: str


class Reason(StrEnum):
    """Why a connect was allowed or denied (audited, counted, sent to the server)."""

    OK = "ok"
    UNKNOWN_CLIENT = "unknown_client"
    BAD_PASSWORD = "bad_password"  # noqa: S105 (a reason code, not a secret)
    DISABLED = "disabled"
    BAD_CLIENT_ID = "bad_client_id"
    BAD_REQUEST = "bad_request"
    UNSUPPORTED_CLIENT = "unsupported_client"
    ERROR = "error"


@dataclass(frozen=True)
class Decision:
    """The outcome of one check."""

    allowed: bool
    reason: Reason
    region: str | None = None
    #: From the verified-credential cache (audited, so a figure can tell hits from KDFs).
    cached: bool = False


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` for the table."""
    return _HASHER.hash(password)


def new_password() -> str:
    """A fresh random client password (URL-safe, 32 characters)."""
    return secrets.token_urlsafe(24)


def decide(client_id: str, password: str, record: ClientRecord | None) -> Decision:
    """Allow only an existing, enabled client whose password verifies (pure but for the KDF).

    Unknown clients still cost one KDF check against a dummy hash, so response time does
    not tell which client ids exist.
    """
    try:
        check_client_id(client_id)
    except SentinelError:
        return Decision(False, Reason.BAD_CLIENT_ID)
    if not password or len(password) > MAX_PASSWORD_CHARS:
        if record is None:
            return Decision(False, Reason.UNKNOWN_CLIENT)
        return Decision(False, Reason.BAD_PASSWORD, record.region)
    if record is None:
        _verify(_DUMMY_HASH, password)
        return Decision(False, Reason.UNKNOWN_CLIENT)
    if not record.enabled:
        return Decision(False, Reason.DISABLED, record.region)
    if not _verify(record.password_hash, password):
        return Decision(False, Reason.BAD_PASSWORD, record.region)
    return Decision(True, Reason.OK, record.region)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password.encode("utf-8", "surrogatepass"))
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


class AuthDb:
    """The ``sentinel_clients`` table in a site database (SQLite or PostgreSQL)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @classmethod
    def open(cls, database_url: str) -> AuthDb:
        """An AuthDb on its own engine (close it with :meth:`aclose`)."""
        return cls(Store(database_url))

    async def start(self) -> None:
        """Create the table unless it exists (two processes may race: the loser re-checks)."""
        for attempt in range(3):
            try:
                async with self._store.engine.begin() as connection:
                    await connection.run_sync(Base.metadata.create_all)
                return
            except SQLAlchemyError:
                if attempt == 2:
                    raise

    async def aclose(self) -> None:
        """Release the database connections."""
        await self._store.aclose()

    async def get(self, client_id: str) -> ClientRecord | None:
        """The client's record, or None."""
        async with self._store.sessionmaker() as session:
            row = await session.get(SentinelClientRow, client_id)
            if row is None:
                return None
            return ClientRecord(row.client_id, row.password_hash, row.enabled, row.region)

    async def add(self, client_id: str, password: str, region: str) -> ClientRecord:
        """Create or reset a client (enabled, new password); SentinelError for a bad id/region."""
        check_client_id(client_id)
        if region not in REGIONS:
            raise SentinelError(f"unknown region {region!r}; choose one of {', '.join(REGIONS)}")
        now = utcnow()
        async with self._store.sessionmaker() as session, session.begin():
            row = await session.get(SentinelClientRow, client_id)
            if row is None:
                row = SentinelClientRow(client_id=client_id, created_at=now)
                session.add(row)
            row.password_hash = hash_password(password)
            row.enabled = True
            row.region = region
            row.updated_at = now
        return ClientRecord(client_id, row.password_hash, True, region)

    async def add_many(self, client_ids: list[str], password_hash: str, region: str) -> None:
        """Insert many new clients sharing one prebuilt hash (fleets for load runs)."""
        for client_id in client_ids:
            check_client_id(client_id)
        now = utcnow()
        async with self._store.sessionmaker() as session, session.begin():
            session.add_all(
                SentinelClientRow(
                    client_id=client_id,
                    password_hash=password_hash,
                    enabled=True,
                    region=region,
                    created_at=now,
                    updated_at=now,
                )
                for client_id in client_ids
            )

    async def set_enabled(self, client_id: str, enabled: bool) -> bool:
        """Enable or disable a client; False when it does not exist."""
        async with self._store.sessionmaker() as session, session.begin():
            row = await session.get(SentinelClientRow, client_id)
            if row is None:
                return False
            row.enabled = enabled
            row.updated_at = utcnow()
        return True

    async def changed_since(self, since: datetime) -> list[str]:
        """Clients whose row changed (``updated_at``) at or after ``since``."""
        async with self._store.sessionmaker() as session:
            result = await session.execute(
                select(SentinelClientRow.client_id).where(SentinelClientRow.updated_at >= since)
            )
            return list(result.scalars())

    async def list_ids(self) -> list[str]:
        """Every client id, sorted."""
        async with self._store.sessionmaker() as session:
            result = await session.execute(
                select(SentinelClientRow.client_id).order_by(SentinelClientRow.client_id)
            )
            return list(result.scalars())

    async def snapshot(self) -> list[tuple[str, bool]]:
        """Every client's ``(client_id, enabled)``: what the inspection's auth stage needs."""
        async with self._store.sessionmaker() as session:
            result = await session.execute(
                select(SentinelClientRow.client_id, SentinelClientRow.enabled)
            )
            return [(client_id, bool(enabled)) for client_id, enabled in result]

    @property
    def store(self) -> Store:
        """The site database this Auth DB lives in (the worker also reads shared IOCs)."""
        return self._store
