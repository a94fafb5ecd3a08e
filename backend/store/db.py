"""The database of one site: engine, sessions, schema creation, health check.

SQLite (aiosqlite) by default, PostgreSQL (asyncpg) for real runs — the same code. Plain
``sqlite:///`` and ``postgresql://`` URLs (as bench.json writes them) are mapped to their
async drivers here, at the boundary.
"""

from __future__ import annotations

import importlib
import importlib.util
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from backend.errors import StartupError
from backend.store.models import Base

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
}


def async_database_url(url: str) -> str:
    """``url`` with an asyncio driver (``sqlite:///x`` -> ``sqlite+aiosqlite:///x``)."""
    parsed = make_url(url)
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        return url
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; everything we store is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def iso(moment: datetime | None) -> str | None:
    """RFC 3339 with a ``Z`` suffix, or None."""
    if moment is None:
        return None
    return as_utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while the ingest writes; busy_timeout rides out short locks.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Store:
    """Engine and session factory of one site's database."""

    def __init__(self, database_url: str) -> None:
        self.url = async_database_url(database_url)
        kwargs: dict[str, Any] = {}
        is_sqlite = self.url.startswith("sqlite")
        if is_sqlite:
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )
        self._closed = False

    async def start(self) -> None:
        """Create the tables (federation's too, when that package defines them)."""
        if importlib.util.find_spec("backend.federation.tables") is not None:
            importlib.import_module("backend.federation.tables")
        try:
            async with self.engine.begin() as connection:
                await connection.run_sync(Base.metadata.create_all)
        except (SQLAlchemyError, OSError) as error:
            shown = make_url(self.url).render_as_string(hide_password=True)
            raise StartupError(
                f"cannot open the database {shown}: {error}; check AURORA_DATABASE_URL "
                "and that the server is running"
            ) from error

    async def ping(self) -> bool:
        """True when a trivial query succeeds."""
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError):
            return False
        return True

    async def aclose(self) -> None:
        """Dispose of the pool; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        await self.engine.dispose()
