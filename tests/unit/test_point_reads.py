"""``PointReads``: one-row reads answer what the engine answers, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    String,
    bindparam,
    create_engine,
    exists,
    select,
    update,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from iotkit.db import Database, open_database
from iotkit.point_reads import CONNECT_TIMEOUT, PointReads
from iotkit.sqltypes import UtcDateTime
from tests.conftest import Backend

NOW = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


class _Base(DeclarativeBase):
    pass


class Thing(_Base):
    __tablename__ = "things"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    weight: Mapped[float | None] = mapped_column(Float, nullable=True)
    count: Mapped[int] = mapped_column(BigInteger)
    made_at: Mapped[datetime] = mapped_column(UtcDateTime)
    gone_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class Part(_Base):
    __tablename__ = "parts"

    id: Mapped[int] = mapped_column(primary_key=True)
    thing_id: Mapped[str] = mapped_column(ForeignKey("things.id"))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


# As the devices' read is built: every column, an EXISTS with a bound time, a literal.
LIVE_THING = select(
    *Thing.__table__.c,
    exists().where(Part.thing_id == Thing.id, Part.expires_at > bindparam("now")).label("has_part"),
).where(Thing.id == bindparam("thing_id"), Thing.gone_at.is_(None), Thing.name != "hidden")


@pytest.fixture
async def database(backend: Backend) -> AsyncIterator[Database]:
    opened = await open_database(
        service="points",
        settings=backend.settings,
        tables=_Base.metadata,
        schema=backend.schema("points"),
    )
    async with opened.sessions.begin() as session:
        session.add_all(
            [
                Thing(id="a", name="Ä thing", weight=1.5, count=2**40, made_at=NOW),
                Thing(id="b", name="bare", weight=None, count=0, made_at=NOW),
                Thing(id="gone", name="gone", count=1, made_at=NOW, gone_at=NOW),
                Thing(id="h", name="hidden", count=1, made_at=NOW),
            ]
        )
        await session.flush()
        session.add(Part(id=1, thing_id="a", expires_at=NOW + timedelta(days=1)))
    yield opened
    await opened.close()


async def _by_engine(database: Database, thing_id: str, now: datetime) -> tuple[object, ...] | None:
    async with database.engine.connect() as connection:
        row = (await connection.execute(LIVE_THING, {"thing_id": thing_id, "now": now})).first()
    return None if row is None else tuple(row)


@pytest.mark.parametrize(
    ("thing_id", "now"),
    [
        ("a", NOW),  # a part still valid
        ("a", NOW + timedelta(days=2)),  # its part expired
        ("b", NOW),  # nulls, no part
        ("gone", NOW),  # filtered out by a NULL test
        ("h", NOW),  # filtered out by a literal
        ("missing", NOW),
    ],
)
async def test_rows_read_as_the_engine_reads_them(
    database: Database, thing_id: str, now: datetime
) -> None:
    row = await database.reads.first(LIVE_THING, {"thing_id": thing_id, "now": now})
    expected = await _by_engine(database, thing_id, now)
    assert (None if row is None else tuple(row)) == expected
    if row is not None:
        assert row.made_at == NOW and row.made_at.tzinfo is not None
        assert row.has_part is (thing_id == "a" and now == NOW)
        assert row.count == (2**40 if thing_id == "a" else 0)


async def test_a_committed_write_is_read_at_once(database: Database) -> None:
    assert (await database.reads.first(LIVE_THING, {"thing_id": "b", "now": NOW})).name == "bare"
    async with database.sessions.begin() as session:
        await session.execute(update(Thing).where(Thing.id == "b").values(name="renamed"))
    row = await database.reads.first(LIVE_THING, {"thing_id": "b", "now": NOW})
    assert row is not None and row.name == "renamed"
    async with database.sessions.begin() as session:
        await session.execute(update(Thing).where(Thing.id == "b").values(gone_at=NOW))
    assert await database.reads.first(LIVE_THING, {"thing_id": "b", "now": NOW}) is None


async def test_a_driver_error_is_sqlalchemys(tmp_path: Path) -> None:
    """A SQLite error surfaces as SQLAlchemy's, which the interceptor tells apart as an
    outage (UNAVAILABLE) rather than a bug."""
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()  # a database without the table
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    reads = PointReads(engine)
    try:
        with pytest.raises(OperationalError, match="no such table"):
            await reads.first(LIVE_THING, {"thing_id": "a", "now": NOW})
    finally:
        await reads.close()
        await engine.dispose()


async def test_statements_it_cannot_prepare_are_refused(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    reads = PointReads(engine)
    try:
        with pytest.raises(ValueError, match="IN"):
            await reads.first(
                select(Thing.id).where(Thing.id.in_(bindparam("ids", expanding=True))),
                {"ids": ["a"]},
            )
        with pytest.raises(ValueError, match="plain column names"):
            await reads.first(select(Thing.id.label("_private")), {})
    finally:
        await reads.close()
        await engine.dispose()


async def test_a_locked_database_is_waited_for_off_the_loop(tmp_path: Path) -> None:
    """Reads run on the loop's thread, but never wait there: outside WAL mode a writer's lock
    stops readers, and such a read waits on aiosqlite's thread while the loop goes on."""
    path = tmp_path / "journal.db"  # the default rollback journal, not WAL
    setup = create_engine(f"sqlite:///{path}")
    _Base.metadata.create_all(setup)
    with Session(setup) as session:
        session.add(Thing(id="a", name="locked out", count=1, made_at=NOW))
        session.commit()
    setup.dispose()
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    reads = PointReads(engine)
    locker = sqlite3.connect(path, isolation_level=None)
    try:
        assert (await reads.first(LIVE_THING, {"thing_id": "a", "now": NOW})) is not None
        locker.execute("BEGIN EXCLUSIVE")
        read = asyncio.create_task(reads.first(LIVE_THING, {"thing_id": "a", "now": NOW}))
        began = time.monotonic()
        for _ in range(20):  # the loop keeps turning while the read waits
            await asyncio.sleep(0.01)
        # Not a speed check: a read that waited on the loop's thread would hold it for the
        # whole lock wait (seconds), not let twenty short sleeps through meanwhile.
        assert time.monotonic() - began < CONNECT_TIMEOUT / 10
        assert not read.done()
        locker.execute("COMMIT")
        row = await asyncio.wait_for(read, timeout=10)
        assert row is not None and row.name == "locked out"
    finally:
        locker.close()
        await reads.close()
        await engine.dispose()
