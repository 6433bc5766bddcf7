"""A database made before a column was added still opens: the column is added at start
(the stopgap until migrations, issue 14), on SQLite and PostgreSQL."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import BigInteger, Float, Integer, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from iotkit.db import open_database
from tests.conftest import Backend


class _Before(DeclarativeBase):
    pass


class _After(DeclarativeBase):
    pass


class OldThing(_Before):
    __tablename__ = "things"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(16))


class NewThing(_After):
    __tablename__ = "things"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(16))
    period_us: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    weight: Mapped[float] = mapped_column(Float, default=1.5)
    note: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # No default to fill old rows with: left out, logged, and the rest still added.
    required: Mapped[str] = mapped_column(String(16))


class NewOnly(_After):
    __tablename__ = "new_only"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)


async def test_missing_columns_are_added_once_and_old_rows_filled(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="iotkit.db")
    schema = backend.schema("columns")
    old = await open_database(
        service="columns", settings=backend.settings, metadata=_Before.metadata, schema=schema
    )
    async with old.sessions.begin() as session:
        session.add(OldThing(id=1, name="old"))
    await old.close()

    for _ in range(2):  # the second start finds every column there and changes nothing
        new = await open_database(
            service="columns", settings=backend.settings, metadata=_After.metadata, schema=schema
        )
        async with new.sessions() as session:
            rows = (
                await session.execute(
                    select(NewThing.id, NewThing.period_us, NewThing.weight, NewThing.note)
                )
            ).all()
            assert [tuple(row) for row in rows] == [(1, 0, 1.5, None)]
            assert (await session.execute(select(NewOnly))).all() == []
        await new.close()
    added = [r.column for r in caplog.records if r.getMessage().startswith("added a column")]
    assert sorted(added) == ["things.note", "things.period_us", "things.weight"]
    refused = [r.column for r in caplog.records if r.getMessage().startswith("column missing")]
    assert refused == ["things.required", "things.required"]
