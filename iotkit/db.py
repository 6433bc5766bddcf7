"""One SQLAlchemy 2 async engine per service.

SQLite file ``<data dir>/<service>.db`` by default; PostgreSQL (psycopg 3)
when ``IOT_DATABASE_URL`` is set, each service in its own schema so that no
service can read another's tables by accident.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from iotkit.config import Settings

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(slots=True)
class Database:
    """A service's engine, its session factory and what kind of database it is."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    kind: str
    schema: str | None

    async def ping(self) -> float:
        """Run a trivial query; answers its latency in milliseconds (raises if unreachable)."""
        started = time.perf_counter()
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return (time.perf_counter() - started) * 1000

    async def close(self) -> None:
        """Release every pooled connection."""
        await self.engine.dispose()


def _sqlite_engine(path: Path) -> AsyncEngine:
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}", connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        # WAL lets readers run beside the single writer; foreign keys are off by default.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def _postgres_engine(url: str, schema: str) -> AsyncEngine:
    parsed = make_url(url).set(drivername="postgresql+psycopg")
    return create_async_engine(
        parsed,
        pool_size=5,
        max_overflow=5,
        pool_pre_ping=True,
        connect_args={"options": f"-csearch_path={schema}"},
    )


async def open_database(
    *, service: str, settings: Settings, metadata: MetaData, schema: str | None = None
) -> Database:
    """Connect the database of ``service`` and create its tables if missing.

    ``schema`` overrides the PostgreSQL schema name (``iot_<service>``), which
    tests use to get a clean schema of their own.
    """
    if settings.database_url:
        name = schema or f"iot_{service}"
        if not _SCHEMA_NAME.match(name):
            raise ValueError(f"invalid schema name {name!r}")
        engine = _postgres_engine(settings.database_url, name)
        async with engine.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{name}"'))
            await connection.run_sync(metadata.create_all)
        return Database(
            engine, async_sessionmaker(engine, expire_on_commit=False), "postgresql", name
        )
    engine = _sqlite_engine(settings.data_dir / f"{service}.db")
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    return Database(engine, async_sessionmaker(engine, expire_on_commit=False), "sqlite", None)
