"""One-row reads past SQLAlchemy's async layers, for the hottest reads of a service.

Through an ``AsyncEngine`` on SQLite, a one-row SELECT makes five trips to
aiosqlite's thread (cursor, execute, fetch, cursor close, the pool's
rollback) with greenlet switches around each: about 0.4 ms of CPU for a query
SQLite answers in 20 µs (BENCHMARKS §20). :class:`PointReads` compiles a
statement once for the database's dialect and, on SQLite, runs it on a
connection of its own, converting parameters and columns with the statement's
own SQLAlchemy types, so a row reads as the engine's would (an aware
``UtcDateTime``, a bool). That connection reads in autocommit: each SELECT sees
every transaction committed before it began (the engine's connections commit
before a write returns), and in WAL mode it never waits for the writer.

So the read runs on the event loop's own thread: a read by key costs SQLite a few
microseconds, less than even one trip to a thread and back (the hand-over, the thread's
wake-up and its wait for the GIL, the loop's wake-up: about 40 µs of a ``GetDevice``
under load). It never waits there: its connection gives up at once on a locked
database (a reader meets a lock only outside WAL mode, or while SQLite recovers a
journal), and that read goes to an aiosqlite connection, whose thread waits for the
lock as the engine would. A driver error is raised as SQLAlchemy's
(``OperationalError`` and so on), so outages are told apart as before.

On PostgreSQL the read goes through the engine: psycopg runs on the event loop
itself, with no thread to hop to.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import namedtuple
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiosqlite
from sqlalchemy import Select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

Processor = Callable[[Any], Any] | None

CONNECT_TIMEOUT = 30.0
"""Seconds SQLite waits on a lock before it answers "database is locked" (the engine's own),
on the thread that reads past a lock."""

_LOCKED = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A statement compiled for SQLite: its SQL, how to bind it and how to read its rows."""

    sql: str
    compiled: Any  # sqlalchemy's SQLCompiler, for the parameters' defaults
    names: tuple[str, ...]  # the bound parameters in the SQL's order
    binds: tuple[Processor, ...]
    results: tuple[Processor, ...]
    row: Callable[..., tuple[Any, ...]]  # a named tuple of the statement's column keys


def _prepare(statement: Select[Any], engine: AsyncEngine) -> _Prepared:
    dialect = engine.dialect
    compiled = statement.compile(dialect=dialect)
    if compiled.positiontup is None:
        raise ValueError("point reads need a dialect with positional parameters")
    names = tuple(compiled.positiontup)
    if getattr(compiled, "post_compile_params", None):
        raise ValueError("point reads take no expanding (IN) parameters")
    keys = list(statement.selected_columns.keys())
    if not all(key.isidentifier() and not key.startswith("_") for key in keys):
        raise ValueError(f"point reads need plain column names, not {keys}")
    return _Prepared(
        sql=str(compiled),
        compiled=compiled,
        names=names,
        binds=tuple(
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in names
        ),
        results=tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in statement.selected_columns
        ),
        row=namedtuple("Row", keys),  # type: ignore[misc]
    )


class PointReads:
    """Runs prepared one-row SELECTs on ``engine``'s database; close it before the engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # An in-memory database is the engine's connection's own: another would see nothing.
        self._sqlite = engine.dialect.name == "sqlite" and engine.url.database not in (
            None,
            "",
            ":memory:",
        )
        self._prepared: dict[int, tuple[Select[Any], _Prepared]] = {}
        self._here: sqlite3.Connection | None = None
        self._connection: aiosqlite.Connection | None = None
        self._opening = asyncio.Lock()
        self._closed = False

    async def first(self, statement: Select[Any], params: Mapping[str, Any]) -> Any | None:
        """The first row of ``statement`` with ``params`` (attributes by column key), or None.

        ``statement`` should be built once (a module constant): it is compiled on first use.
        """
        if not self._sqlite:
            async with self._engine.connect() as engine_connection:
                return (await engine_connection.execute(statement, dict(params))).first()
        prepared = self._prepare(statement)
        values = prepared.compiled.construct_params(params)
        bound = [
            values[name] if process is None else process(values[name])
            for name, process in zip(prepared.names, prepared.binds, strict=True)
        ]
        rows = self._read_here(prepared.sql, bound)
        if rows is None:
            rows = await self._read_waiting(prepared.sql, bound)
        if not rows:
            return None
        return prepared.row(
            *(
                value if process is None else process(value)
                for value, process in zip(rows[0], prepared.results, strict=True)
            )
        )

    def _read_here(self, sql: str, bound: list[Any]) -> list[Any] | None:
        """The rows, read on this thread without waiting; None when the database is locked."""
        here = self._here or self._open_here()
        try:
            return here.execute(sql, bound).fetchall()
        except sqlite3.Error as exc:
            if getattr(exc, "sqlite_errorcode", None) in _LOCKED:
                return None
            raise DBAPIError.instance(sql, bound, exc, sqlite3.Error) from exc

    def _open_here(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError("point reads closed")
        try:
            # No busy timeout: a lock is waited for on aiosqlite's thread, not on the loop's.
            # (SQLite serializes a connection's use, should another thread ever share it.)
            self._here = sqlite3.connect(
                str(self._engine.url.database),
                timeout=0,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise DBAPIError.instance("connect", [], exc, sqlite3.Error) from exc
        return self._here

    async def _read_waiting(self, sql: str, bound: list[Any]) -> list[Any]:
        """The rows, read on aiosqlite's thread, which waits for a lock as the engine does."""
        connection = await self._open()
        try:
            return list(await connection.execute_fetchall(sql, bound))
        except sqlite3.Error as exc:
            raise DBAPIError.instance(sql, bound, exc, sqlite3.Error) from exc

    def _prepare(self, statement: Select[Any]) -> _Prepared:
        known = self._prepared.get(id(statement))
        if known is not None and known[0] is statement:
            return known[1]
        prepared = _prepare(statement, self._engine)
        # The statement is kept beside its compilation, so that its id stays its own.
        self._prepared[id(statement)] = (statement, prepared)
        return prepared

    async def _open(self) -> aiosqlite.Connection:
        if self._connection is not None:
            return self._connection
        async with self._opening:
            if self._closed:
                raise RuntimeError("point reads closed")
            if self._connection is None:
                try:
                    self._connection = await aiosqlite.connect(
                        str(self._engine.url.database),
                        timeout=CONNECT_TIMEOUT,
                        isolation_level=None,
                    )
                except sqlite3.Error as exc:
                    raise DBAPIError.instance("connect", [], exc, sqlite3.Error) from exc
            return self._connection

    async def close(self) -> None:
        """Close the connections (the waiting one's thread ends with it)."""
        async with self._opening:
            self._closed = True
            here, self._here = self._here, None
            connection, self._connection = self._connection, None
        if here is not None:
            here.close()
        if connection is not None:
            await connection.close()
