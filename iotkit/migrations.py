"""Each service's schema migrations (Alembic), driven from code rather than ``alembic.ini``.

A service keeps its history in its own package (``services/<name>/migrations/
versions/``) and hands it to the kit as a :class:`History`: the kit imports
nothing of the services. Every service database has its own version table
(``alembic_version``), in the service's PostgreSQL schema or its SQLite file,
so the five histories never meet.

:func:`upgrade` is what a service runs at start (through
:func:`iotkit.db.open_database`) and ``iot migrate`` by hand. It refuses a
database at a revision this code does not know (a newer release migrated it)
with :class:`MigrationRefused`, rather than guess; and it adopts a database
made before migrations existed (tables but no version table) by stamping it at
the first revision, whose schema is exactly what that code created, then
upgrading it like any other.

Everything here is synchronous, on a SQLAlchemy ``Connection``: callers with
an async engine run it through ``AsyncConnection.run_sync``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, MetaData, create_engine, inspect, text

VERSION_TABLE = "alembic_version"
"""Alembic's own table of the revision a database is at; one per service database."""

log = logging.getLogger(__name__)


class MigrationRefused(Exception):
    """The database is at a revision this code cannot migrate from; the message says which."""


@dataclass(frozen=True, slots=True)
class History:
    """A service's migration history: where its scripts are and the models they must match."""

    service: str
    directory: Path
    """Holds ``versions/``, one module per revision."""
    metadata: MetaData
    """The service's tables as its code declares them (for checking, never for creating)."""

    @property
    def script(self) -> ScriptDirectory:
        """Alembic's view of the scripts (parsed once per directory)."""
        return _script(str(self.directory))

    @property
    def head(self) -> str:
        """The newest revision of this code."""
        head = self.script.get_current_head()
        if head is None:
            raise ValueError(f"{self.service}: no migration in {self.directory}")
        return head

    @property
    def base(self) -> str:
        """The first revision: the schema of the code before migrations existed."""
        base = self.script.get_base()
        if base is None:
            raise ValueError(f"{self.service}: no migration in {self.directory}")
        return base

    def knows(self, revision: str) -> bool:
        """True when ``revision`` is one of this code's revisions."""
        try:
            return self.script.get_revision(revision) is not None
        except CommandError:
            return False


@dataclass(frozen=True, slots=True)
class Outcome:
    """What :func:`upgrade` did: the revision before (None for an empty database), after,
    and whether it adopted a database made before migrations."""

    before: str | None
    after: str
    adopted: bool = False


@cache
def _script(directory: str) -> ScriptDirectory:
    return ScriptDirectory(directory)


def _config(history: History) -> Config:
    config = Config()
    config.set_main_option("script_location", str(history.directory))
    return config


def current(connection: Connection, *, schema: str | None = None) -> str | None:
    """The revision the database is at, or None when it has no version table (or it is empty)."""
    context = MigrationContext.configure(connection, opts={"version_table_schema": schema})
    heads = context.get_current_heads()
    # One history per service and no branches: more than one head is not ours to resolve.
    return ",".join(heads) if heads else None


def _user_tables(connection: Connection, schema: str | None) -> set[str]:
    return set(inspect(connection).get_table_names(schema=schema)) - {VERSION_TABLE}


def lock_schema(connection: Connection, schema: str | None) -> None:
    """On PostgreSQL, take the advisory lock of ``schema`` until the transaction ends, so
    that replicas starting together create and migrate it one after the other."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": f"iotsuite-migrations:{schema or ''}"},
        )


def upgrade(
    connection: Connection, history: History, *, schema: str | None = None, target: str = "head"
) -> Outcome:
    """Bring the database to ``target`` (a revision of ``history`` or "head"), down if it is
    older than where the database is; answers what it did.

    Raises :class:`MigrationRefused` for a database at a revision the code does
    not know, and for one made before migrations that lacks part of the first
    revision's schema. Runs in the caller's transaction; on PostgreSQL it first
    takes an advisory lock of the schema, so replicas starting together migrate
    one after the other (the second finds nothing left to do).
    """
    lock_schema(connection, schema)
    before = current(connection, schema=schema)
    if before is not None and not all(history.knows(rev) for rev in before.split(",")):
        raise MigrationRefused(
            f"{history.service} database is at revision {before}, which this code does not "
            f"know (its head is {history.head}): a newer release migrated it; run that "
            f"release, or restore a backup taken before it"
        )
    wanted = history.head if target == "head" else target
    if not history.knows(wanted):
        raise ValueError(f"{history.service} has no revision {target!r}")
    adopted = False
    if before is None and _user_tables(connection, schema):
        _adopt(connection, history, schema=schema)
        before = history.base
        adopted = True
    if before != wanted:
        down = _is_older(history, wanted, before)
        _run(connection, history, schema=schema, target=wanted, down=down)
        log.info(
            "database migrated",
            extra={"service": history.service, "from": before or "empty", "to": wanted},
        )
    return Outcome(before=before, after=wanted, adopted=adopted)


def _is_older(history: History, target: str, than: str | None) -> bool:
    """True when ``target`` is an ancestor of revision ``than``: reaching it is a downgrade."""
    if than is None:
        return False
    return any(
        script.revision == target for script in history.script.iterate_revisions(than, "base")
    )


def _run(
    connection: Connection, history: History, *, schema: str | None, target: str, down: bool
) -> None:
    script = history.script

    def steps(heads: Any, _context: MigrationContext) -> Iterable[Any]:
        if down:
            return script._downgrade_revs(target, heads)
        return script._upgrade_revs(target, heads)

    with EnvironmentContext(_config(history), script, fn=steps) as environment:
        environment.configure(
            connection=connection,
            target_metadata=history.metadata,
            version_table_schema=schema,
        )
        with environment.begin_transaction():
            environment.run_migrations()


def _adopt(connection: Connection, history: History, *, schema: str | None) -> None:
    """Stamp a database made before migrations at the first revision, once it is sure that
    every table and column of that revision is there."""
    present = inspect(connection)
    missing = []
    for table, columns in _base_shape(history).items():
        if not present.has_table(table, schema=schema):
            missing.append(table)
            continue
        have = {column["name"] for column in present.get_columns(table, schema=schema)}
        missing.extend(f"{table}.{name}" for name in sorted(columns - have))
    if missing:
        # Stamping anyway would make the next query naming them fail; better to say so now.
        raise MigrationRefused(
            f"{history.service} database has no version table and lacks part of revision "
            f"{history.base} ({', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}): "
            f"it was made by a release older than the one before migrations; start that "
            f"release once (it adds them), then this one"
        )
    context = MigrationContext.configure(connection, opts={"version_table_schema": schema})
    context.stamp(history.script, history.base)
    log.warning(
        "database made before migrations adopted",
        extra={"service": history.service, "stamped": history.base},
    )


@cache
def _base_shape_of(directory: str, service: str, metadata: MetaData) -> dict[str, frozenset[str]]:
    history = History(service=service, directory=Path(directory), metadata=metadata)
    # The first revision built in a scratch in-memory database is the plain truth of
    # which tables and columns it has, whatever the models say today.
    engine = create_engine("sqlite://")
    try:
        with engine.begin() as connection:
            _run(connection, history, schema=None, target=history.base, down=False)
            inspector = inspect(connection)
            return {
                table: frozenset(column["name"] for column in inspector.get_columns(table))
                for table in _user_tables(connection, None)
            }
    finally:
        engine.dispose()


def _base_shape(history: History) -> dict[str, frozenset[str]]:
    return _base_shape_of(str(history.directory), history.service, history.metadata)


def differences(connection: Connection, history: History) -> list[Any]:
    """What Alembic's autogenerate finds between the database and the models (empty when
    they agree), ignoring the version table and the partitions of partitioned tables (the
    models declare the parent; its partitions are made at run time)."""
    ignored = {VERSION_TABLE, *partition_tables(connection)}
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "include_name": lambda name, kind, _parent: kind != "table" or name not in ignored,
        },
    )
    return list(compare_metadata(context, history.metadata))


def partition_tables(connection: Connection) -> set[str]:
    """The tables of the current schema that are partitions of another (PostgreSQL)."""
    if connection.dialect.name != "postgresql":
        return set()
    rows = connection.execute(
        text(
            "SELECT relname FROM pg_class WHERE relispartition "
            "AND relnamespace = to_regnamespace(current_schema())"
        )
    )
    return {str(name) for (name,) in rows}
