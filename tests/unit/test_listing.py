"""``fetch_page``: a page of a query and its total, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import ForeignKey, Integer, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from iotkit.db import Database, open_database
from iotkit.listing import contains, fetch_page
from tests.conftest import Backend


class _Base(DeclarativeBase):
    pass


class Item(_Base):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(32))


class Tag(_Base):
    __tablename__ = "tags"

    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), primary_key=True)
    label: Mapped[str] = mapped_column(String(8))


@pytest.fixture
async def database(backend: Backend) -> AsyncIterator[Database]:
    opened = await open_database(
        service="listing",
        settings=backend.settings,
        tables=_Base.metadata,
        schema=backend.schema("listing"),
    )
    async with opened.sessions.begin() as session:
        session.add_all(
            Item(id=i, kind="odd" if i % 2 else "even", name=f"Item_{i:02d}") for i in range(1, 24)
        )
        session.add_all(Tag(item_id=i, label=f"t{i}") for i in range(1, 24, 3))
    yield opened
    await opened.close()


async def test_pages_and_total_agree_with_the_filter(database: Database) -> None:
    odd = select(Item).where(Item.kind == "odd").order_by(Item.id.desc())
    async with database.sessions() as session:
        first, total = await fetch_page(session, odd, offset=0, limit=5)
        last, again = await fetch_page(session, odd, offset=10, limit=5)
        beyond, after = await fetch_page(session, odd, offset=40, limit=5)
        every, _ = await fetch_page(session, odd, offset=0, limit=None)
    assert total == again == after == 12
    assert [item.id for item in first] == [23, 21, 19, 17, 15]
    assert [item.id for item in last] == [3, 1]
    assert beyond == []
    assert [item.id for item in every] == list(range(23, 0, -2))


async def test_a_join_of_two_entities_answers_tuples(database: Database) -> None:
    joined = (
        select(Item, Tag)
        .outerjoin(Tag, Tag.item_id == Item.id)
        .where(contains(Item.name, "item_1"))
        .order_by(Item.id)
    )
    async with database.sessions() as session:
        rows, total = await fetch_page(session, joined, offset=1, limit=3)
    assert total == 10  # Item_10 .. Item_19; "_" is no LIKE wildcard here
    assert [(item.id, tag.label if tag else None) for item, tag in rows] == [
        (11, None),
        (12, None),
        (13, "t13"),
    ]
