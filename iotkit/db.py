"""One SQLAlchemy 2 async engine per service.

SQLite file ``<data dir>/<service>.db`` by default; PostgreSQL (psycopg 3)
when ``IOT_DATABASE_URL`` is set, each service in its own schema so that no
service can read another's tables by accident. Either way a commit is durable
when it returns: SQLite runs with ``synchronous=FULL`` (PostgreSQL's default
``synchronous_commit=on`` does the same).

Each service's schema is its Alembic history (:mod:`iotkit.migrations`),
applied to its head as the database is opened: a fresh database is built by
the migrations, an older one upgraded, one made before migrations adopted; a
database at a revision the code does not know makes :func:`open_database`
raise :class:`~iotkit.migrations.MigrationRefused`, and the process exits
saying so rather than run on a schema it does not understand. Only tests'
throwaway tables (a bare ``MetaData``) are created as they are.

A service may start before its database does (a machine booting, a
container restarted): :func:`open_database` then retries with backoff for
``IOT_STARTUP_TIMEOUT`` seconds, logging one line per failed attempt, and
raises :class:`DatabaseUnavailable` when the database never answered. With
``wait=False`` it answers at once instead and keeps trying in the background
for as long as it takes; :attr:`Database.ready` is set once the migrations
ran, so the process can serve (NOT_SERVING) meanwhile. A refusal found in the
background is logged and leaves the process NOT_SERVING.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, MetaData, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from iotkit.config import Settings
from iotkit.migrations import History, MigrationRefused, lock_schema, upgrade
from iotkit.point_reads import PointReads
from iotkit.tasks import cancel

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}\Z")

RETRY_FIRST = 0.5
"""Seconds before the second attempt to open the database; doubled after each failure."""

RETRY_MAX = 5.0
"""Longest pause between two attempts, so that a database that returns is found soon."""

ATTEMPT_MIN = 5.0
"""Shortest time one attempt to connect may take, even when the start-up deadline is nearer."""

ATTEMPT_MAX = 60.0
"""Longest time one attempt to connect may take, so that a hung connect is retried (a
migration, once connected, runs as long as it needs)."""

SQLITE_SYNCHRONOUS = "FULL"
"""SQLite's ``synchronous`` for every service: a commit is on disk before it is acknowledged."""

IDLE_IN_TRANSACTION_MS = 60_000
"""How long PostgreSQL lets a service connection sit idle inside a transaction before it
ends the session; no service waits between two statements of a transaction that long."""

CLIENT_CHECK_MS = 5_000
"""How often PostgreSQL (14 or newer) checks, during a long query, that the client is
still connected."""

# Errors that say the database is not there (yet), as opposed to a bug or a bad schema.
_UNREACHABLE = (OperationalError, InterfaceError, OSError, TimeoutError)

log = logging.getLogger(__name__)


class DatabaseUnavailable(Exception):
    """The database did not answer within the start-up timeout; the message says where and why."""


@dataclass(slots=True)
class Database:
    """A service's engine, its session factory and what kind of database it is."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    kind: str
    schema: str | None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the database answered and its tables exist."""
    preparing: asyncio.Task[None] | None = None
    reads: PointReads = field(init=False)
    """The hottest one-row reads, past SQLAlchemy's async layers (:mod:`iotkit.point_reads`)."""

    def __post_init__(self) -> None:
        self.reads = PointReads(self.engine)

    async def ping(self) -> float:
        """Run a trivial query; answers its latency in milliseconds (raises if unreachable)."""
        started = time.perf_counter()
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return (time.perf_counter() - started) * 1000

    async def close(self) -> None:
        """Stop waiting for the database, then release every pooled connection."""
        await cancel(self.preparing)
        await self.reads.close()
        await self.engine.dispose()


def _sqlite_engine(path: Path) -> AsyncEngine:
    # A directory made here is its owner's alone; the database (password hashes, for auth)
    # is created readable by its owner only, and SQLite gives its -wal and -shm the same mode.
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.touch(mode=0o600, exist_ok=True)
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}", connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        # WAL lets readers run beside the single writer; foreign keys are off by default.
        # FULL fsyncs the log at every commit: what a service acknowledges (a stored batch,
        # a registration) survives a power cut, which NORMAL does not promise in WAL mode.
        # The telemetry writer's group commit makes that one fsync per group of batches.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


_SERVER_GUARDS = (
    f"-cidle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}"
    f" -cclient_connection_check_interval={CLIENT_CHECK_MS}"
)
"""Server-side limits on every service connection. A process that dies, or an event loop
that closes, with a transaction open leaves its backend holding row and table locks
for as long as the socket stays open: every writer of those rows, and any DDL (a
migration, a partition), would queue behind it. The server ends such a transaction once
it has been idle that long, and a query whose client has gone is ended at the next check
instead of when it finishes."""


def _postgres_engine(url: str, schema: str) -> AsyncEngine:
    parsed = make_url(url).set(drivername="postgresql+psycopg")
    return create_async_engine(
        parsed,
        pool_size=5,
        max_overflow=5,
        pool_pre_ping=True,
        connect_args={"options": f"-csearch_path={schema} {_SERVER_GUARDS}"},
    )


Attempt = Callable[[asyncio.Timeout], Awaitable[None]]
"""One try at preparing the database, under a time limit it may lift once connected."""


def _prepare_tables(connection: Connection, tables: History | MetaData, schema: str | None) -> None:
    if schema is not None:
        # Under the schema's lock: CREATE SCHEMA IF NOT EXISTS fails, rather than waits,
        # when a replica starting at the same moment creates it first.
        lock_schema(connection, schema)
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    if isinstance(tables, History):
        upgrade(connection, tables, schema=schema)
    else:
        tables.create_all(connection)


def _preparer(engine: AsyncEngine, tables: History | MetaData, schema: str | None) -> Attempt:
    async def attempt(limit: asyncio.Timeout) -> None:
        async with engine.begin() as connection:
            # Connected: the limit is for a connect that hangs, not for a migration that
            # takes long (or waits for a replica's), which a cut would only roll back.
            limit.reschedule(None)
            await connection.run_sync(_prepare_tables, tables, schema)

    return attempt


async def open_database(
    *,
    service: str,
    settings: Settings,
    tables: History | MetaData,
    schema: str | None = None,
    wait: bool = True,
) -> Database:
    """Connect the database of ``service`` and migrate it to the head of its history.

    ``tables`` is the service's :class:`~iotkit.migrations.History`, or a bare
    ``MetaData`` whose tables are created as they are (tests' throwaway tables).
    Raises :class:`~iotkit.migrations.MigrationRefused` for a database this
    code cannot migrate. ``schema`` overrides the PostgreSQL schema name
    (``iot_<service>``), which tests use to get a clean schema of their own.
    While the database cannot be reached, retries with backoff until
    ``settings.startup_timeout`` has passed, then raises
    :class:`DatabaseUnavailable`; with ``wait=False``, answers after the first
    attempt and keeps retrying in the background until it succeeds.
    """
    if settings.database_url:
        name = schema or f"iot_{service}"
        if not _SCHEMA_NAME.match(name):
            raise ValueError(f"invalid schema name {name!r}")
        engine = _postgres_engine(settings.database_url, name)
        where = make_url(settings.database_url).render_as_string(hide_password=True)
        database = Database(
            engine, async_sessionmaker(engine, expire_on_commit=False), "postgresql", name
        )
        attempt = _preparer(engine, tables, name)
        await _prepare(database, attempt, where=where, settings=settings, wait=wait)
        return database
    path = settings.data_dir / f"{service}.db"
    engine = _sqlite_engine(path)
    database = Database(engine, async_sessionmaker(engine, expire_on_commit=False), "sqlite", None)
    await _prepare(
        database, _preparer(engine, tables, None), where=str(path), settings=settings, wait=wait
    )
    return database


async def _prepare(
    database: Database,
    attempt: Attempt,
    *,
    where: str,
    settings: Settings,
    wait: bool,
) -> None:
    """Run ``attempt`` until it succeeds: within the start-up timeout, or (``wait=False``)
    once now and then in the background for as long as it takes."""
    try:
        if wait:
            await _until_reachable(
                attempt, database.engine, where=where, timeout=settings.startup_timeout
            )
            database.ready.set()
            return
        try:
            async with asyncio.timeout(ATTEMPT_MIN) as limit:
                await attempt(limit)
            database.ready.set()
            return
        except _UNREACHABLE as exc:
            reason = _reason(exc) if not isinstance(exc, TimeoutError) else "no answer"
    except MigrationRefused:
        # The caller exits; no pooled connection should outlive the refusal.
        await database.engine.dispose()
        raise
    log.warning(
        "database not reachable, serving NOT_SERVING until it is",
        extra={"database": where, "reason": reason},
    )

    async def in_background() -> None:
        try:
            await _until_reachable(attempt, database.engine, where=where, timeout=math.inf)
        except MigrationRefused as exc:
            # Too late to refuse the start: the process stays NOT_SERVING and says why.
            log.error("database refused", extra={"database": where, "reason": str(exc)})
            return
        database.ready.set()
        log.info("database reachable", extra={"database": where})

    database.preparing = asyncio.create_task(in_background(), name="database-prepare")


def _reason(exc: BaseException) -> str:
    """The driver's own first line (SQLAlchemy's wrapper adds the SQL and a link)."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


async def _until_reachable(
    attempt: Attempt, engine: AsyncEngine, *, where: str, timeout: float
) -> None:
    """Run ``attempt`` until it succeeds, retrying unreachable-database errors with backoff."""
    deadline = time.monotonic() + timeout
    pause = RETRY_FIRST
    number = 0
    while True:
        number += 1
        try:
            # A connect that hangs (a dropped packet, a host that is gone) must
            # not outlast the deadline by more than one short attempt.
            async with asyncio.timeout(
                max(min(deadline - time.monotonic(), ATTEMPT_MAX), ATTEMPT_MIN)
            ) as limit:
                await attempt(limit)
            return
        except _UNREACHABLE as exc:
            reason = _reason(exc) if not isinstance(exc, TimeoutError) else "no answer"
        # The password never reaches a log: `where` hides it, and the reason
        # is the server's or the socket's own message.
        left = deadline - time.monotonic()
        if left <= 0:
            await engine.dispose()
            raise DatabaseUnavailable(
                f"database {where} not reachable after {number} attempts "
                f"in {timeout:g}s (IOT_STARTUP_TIMEOUT): {reason}"
            )
        wait = min(pause, left)
        log.warning(
            "database not reachable, retrying",
            extra={
                "database": where,
                "attempt": number,
                "retry_in": round(wait, 1),
                "reason": reason,
            },
        )
        await asyncio.sleep(wait)
        pause = min(pause * 2, RETRY_MAX)
