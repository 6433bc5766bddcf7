"""Paginated, searchable lists: ``page`` and ``limit``, ``pagination``, ``search``.

Lists take ``page`` (from 1) and ``limit`` and answer seed 001's
``pagination: {page, limit, total, total_pages}`` beside the items; a
``search`` text matches anywhere in a column, ignoring case. Stores fetch a
page and the total of a query with :func:`fetch_page`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar, overload

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from iot.common.v1 import common_pb2
from iotkit.validation import Violations

LIMIT_DEFAULT = 20
LIMIT_MAX = 100

RowT = TypeVar("RowT")
OtherT = TypeVar("OtherT")


@dataclass(frozen=True, slots=True)
class PageRequest:
    """A checked page request."""

    page: int
    limit: int

    @property
    def offset(self) -> int:
        """Rows to skip before this page."""
        return (self.page - 1) * self.limit

    def pages(self, total: int) -> int:
        """Pages of ``limit`` items that ``total`` items make."""
        return -(-total // self.limit)


def check_page(
    violations: Violations, page: int, limit: int, *, default: int = LIMIT_DEFAULT
) -> PageRequest:
    """Check paging: ``page`` from 1 (1 when unset), ``limit`` 1..100 (``default`` when unset)."""
    if page < 0:
        violations.add("page", "Page must be at least 1")
    if limit < 0 or limit > LIMIT_MAX:
        violations.add("limit", f"Limit must be between 1 and {LIMIT_MAX}")
    return PageRequest(max(page, 1), limit or default)


def pagination(request: PageRequest, total: int) -> common_pb2.Pagination:
    """The ``pagination`` block of a page of ``total`` items."""
    return common_pb2.Pagination(
        page=request.page,
        limit=request.limit,
        total=total,
        total_pages=request.pages(total),
    )


def contains(column: Any, text: str) -> ColumnElement[bool]:
    """True when ``column`` contains ``text``, ignoring case (LIKE wildcards escaped)."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return func.lower(column).like(f"%{escaped}%", escape="\\")


@overload
async def fetch_page(
    session: AsyncSession, statement: Select[RowT], *, offset: int, limit: int | None
) -> tuple[list[RowT], int]: ...


@overload
async def fetch_page(
    session: AsyncSession, statement: Select[RowT, OtherT], *, offset: int, limit: int | None
) -> tuple[list[tuple[RowT, OtherT]], int]: ...


async def fetch_page(
    session: AsyncSession, statement: Select[*tuple[Any, ...]], *, offset: int, limit: int | None
) -> tuple[list[Any], int]:
    """One page of ``statement``'s rows and how many rows it selects in all.

    The page skips ``offset`` rows and holds at most ``limit`` (every row
    with None), in the statement's order. A statement of one entity answers
    the entities, one of several answers tuples. The total counts the
    statement itself (as a subquery, without its order), so it always
    agrees with the rows, joins and filters included.
    """
    total = await session.scalar(
        select(func.count()).select_from(statement.order_by(None).subquery())
    )
    paged = statement.offset(offset).limit(limit)
    if len(statement.column_descriptions) == 1:
        return list(await session.scalars(paged)), int(total or 0)
    return [tuple(row) for row in await session.execute(paged)], int(total or 0)
