"""An acknowledged write survives a power cut: telemetry's database flushes every commit
to disk before it returns, as the README states, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Backend

FULL = 2  # PRAGMA synchronous answers a number: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA


async def _settings_of(engine: AsyncEngine, statements: list[str]) -> list[object]:
    async with engine.connect() as connection:
        return [(await connection.execute(text(s))).scalar() for s in statements]


async def test_every_connection_of_telemetrys_database_commits_durably(backend: Backend) -> None:
    database = await backend.open("telemetry")
    try:
        if database.kind == "sqlite":
            statements, durable = ["PRAGMA journal_mode", "PRAGMA synchronous"], ["wal", FULL]
        else:
            statements, durable = ["SHOW synchronous_commit", "SHOW fsync"], ["on", "on"]
        # Several connections at once, so that the pool opens more than the first one.
        answers = await asyncio.gather(
            *(_settings_of(database.engine, statements) for _ in range(3))
        )
        assert answers == [durable] * 3
    finally:
        await database.close()
