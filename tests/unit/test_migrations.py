"""Each service's migrations, on SQLite and PostgreSQL (databases of the test's own).

- the models and the migrations agree: after upgrading an empty database to
  head, Alembic's autogenerate finds no difference;
- a database filled at the first revision (rows in every table) upgrades to
  head without losing a row, the folded ``user_security`` rows end up where the
  code reads them, and the downgrade puts them back;
- a database at a revision the code does not know makes the start refuse, in
  one line naming the service, the revision and the head (exit status 4);
- a database made before migrations (no version table) is adopted; one that
  lacks part of the first revision is refused rather than stamped;
- ``iot migrate`` applies, reports and downgrades;
- replicas starting together on PostgreSQL take turns; a migration is not cut
  off by the connect time limit; a refusal found after a late database answer
  is logged and leaves the service NOT_SERVING.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_sessionmaker

from iotkit import db
from iotkit.config import SERVICES, Settings
from iotkit.db import open_database
from iotkit.migrations import (
    History,
    MigrationRefused,
    current,
    differences,
    partition_tables,
    upgrade,
)
from iotsuite.cli import main as iot
from iotsuite.migrate_cli import history
from services.auth.admin.store import AdminStore
from services.auth.mfa.store import MfaStore
from tests.conftest import Backend, open_backend
from tests.support import free_port

FOLDED = {
    "failed_login_attempts": 7,
    "last_failed_login_at": datetime(2026, 3, 4, 5, 6, 7),
    "totp_secret": b"sealed-secret",
    "totp_pending": None,
    "totp_last_step": 42,
}


@pytest.fixture
def engines(backend: Backend) -> Iterator[dict[str, Engine]]:
    """A plain (sync) engine on each service's database of this test, as the services
    connect: SQLite with foreign keys on, PostgreSQL in the service's own schema."""
    made = {service: _engine(backend, service) for service in SERVICES}
    yield made
    for engine in made.values():
        engine.dispose()


def _engine(backend: Backend, service: str) -> Engine:
    if backend.kind == "sqlite":
        path = backend.settings.data_dir / f"{service}.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(f"sqlite:///{path}")

        @event.listens_for(engine, "connect")
        def _foreign_keys(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA foreign_keys=ON")

        return engine
    assert backend.settings.database_url
    schema = backend.schema(service)
    url = make_url(backend.settings.database_url).set(drivername="postgresql+psycopg")
    engine = create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    return engine


def _migrate(engine: Engine, found: History, backend: Backend, target: str = "head") -> Any:
    with engine.begin() as connection:
        return upgrade(connection, found, schema=backend.schema(found.service), target=target)


@pytest.mark.parametrize("service", SERVICES)
def test_the_models_and_the_migrations_agree(
    service: str, backend: Backend, engines: dict[str, Engine]
) -> None:
    found = history(service)
    outcome = _migrate(engines[service], found, backend)
    assert (outcome.before, outcome.after, outcome.adopted) == (None, found.head, False)
    with engines[service].connect() as connection:
        assert differences(connection, found) == []
        assert current(connection, schema=backend.schema(service)) == found.head


def _value(column: Any, number: int, dialect: str) -> Any:
    """A value of ``column``'s type, distinct per row ``number`` (unique constraints)."""
    kind = column["type"]
    if isinstance(kind, Boolean):
        return number % 2 == 0
    if isinstance(kind, Integer):
        return number + 1
    if isinstance(kind, Float):
        return number + 0.5
    if isinstance(kind, DateTime):
        moment = datetime(2026, 1, 1 + number, 12, 0, 0)
        return moment if dialect == "sqlite" else moment.replace(tzinfo=UTC)
    if isinstance(kind, LargeBinary):
        return f"blob-{number}".encode()
    if isinstance(kind, JSON):
        return {"row": number}
    if isinstance(kind, String):
        return f"v{number}"[: kind.length or 32]
    raise AssertionError(f"no test value for {column['name']} of type {kind!r}")


def _fill(engine: Engine, rows: int) -> dict[str, int]:
    """Put ``rows`` rows in every table (parents first); answers the count per table."""
    reflected = MetaData()
    reflected.reflect(engine)
    dialect = engine.dialect.name
    with engine.begin() as connection:
        for table in reflected.sorted_tables:
            if table.name == "alembic_version":
                continue
            columns = inspect(connection).get_columns(table.name)
            for number in range(rows):
                values = {c["name"]: _value(c, number, dialect) for c in columns}
                # A foreign key names the parent's row of the same number, which exists.
                for key in table.foreign_keys:
                    values[key.parent.name] = _value(
                        {"name": key.column.name, "type": key.column.type}, number, dialect
                    )
                connection.execute(table.insert().values(**values))
        return {
            table.name: connection.scalar(select(func.count()).select_from(table)) or 0
            for table in reflected.sorted_tables
            if table.name != "alembic_version"
        }


def _counts(engine: Engine) -> dict[str, int]:
    """Rows per table; a partitioned table's rows are counted once, in the table itself."""
    reflected = MetaData()
    reflected.reflect(engine)
    with engine.connect() as connection:
        partitions = partition_tables(connection)
        return {
            table.name: connection.scalar(select(func.count()).select_from(table)) or 0
            for table in reflected.sorted_tables
            if table.name != "alembic_version" and table.name not in partitions
        }


async def test_a_database_filled_at_the_first_revision_loses_no_row_up_to_head(
    backend: Backend, engines: dict[str, Engine]
) -> None:
    for service in SERVICES:
        found = history(service)
        engine = engines[service]
        _migrate(engine, found, backend, target=found.base)
        before = _fill(engine, rows=3)
        assert all(count == 3 for count in before.values()), before
        if service == "auth":
            with engine.begin() as connection:
                connection.execute(
                    text(
                        "UPDATE user_security SET failed_login_attempts = :failed_login_attempts,"
                        " last_failed_login_at = :last_failed_login_at,"
                        " totp_secret = :totp_secret, totp_pending = :totp_pending,"
                        " totp_last_step = :totp_last_step WHERE user_id = 'v0'"
                    ),
                    _bound(FOLDED, engine),
                )
        _migrate(engine, found, backend)
        after = _counts(engine)
        if service == "auth":
            # The one table folded away; every row of it now lives in its user's row.
            assert before.pop("user_security") == after["users"]
        # Tables a later revision made start empty.
        assert {t: n for t, n in after.items() if t in before or n} == before, service

    # The folded state is where the code reads it.
    database = await open_database(
        service="auth",
        settings=backend.settings,
        tables=history("auth"),
        schema=backend.schema("auth"),
    )
    try:
        assert await MfaStore(database.sessions).live_secret(user_id="v0") == b"sealed-secret"
        assert await MfaStore(database.sessions).pending_secret(user_id="v0") is None
        assert await AdminStore(database.sessions).failed_login_attempts(user_id="v0") == 7
        assert not await MfaStore(database.sessions).use_step(user_id="v0", step=42)
        assert await MfaStore(database.sessions).use_step(user_id="v0", step=43)
    finally:
        await database.close()

    # And the downgrade puts it back, one row per user, losing nothing around it.
    found = history("auth")
    engine = engines["auth"]
    _migrate(engine, found, backend, target=found.base)
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT failed_login_attempts, totp_secret, totp_last_step FROM user_security "
                "WHERE user_id = 'v0'"
            )
        ).one()
        assert tuple(row) == (7, b"sealed-secret", 43)
        assert "totp_secret" not in {c["name"] for c in inspect(connection).get_columns("users")}
    assert _counts(engine) == {name: 3 for name in _counts(engine)}


def _bound(values: dict[str, Any], engine: Engine) -> dict[str, Any]:
    if engine.dialect.name == "sqlite":
        return values
    return {
        name: value.replace(tzinfo=UTC) if isinstance(value, datetime) else value
        for name, value in values.items()
    }


async def test_a_database_at_an_unknown_revision_refuses_to_start(
    backend: Backend, engines: dict[str, Engine]
) -> None:
    found = history("devices")
    _migrate(engines["devices"], found, backend)
    with engines["devices"].begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(MigrationRefused) as refused:
        await open_database(
            service="devices",
            settings=backend.settings,
            tables=found,
            schema=backend.schema("devices"),
        )
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("devices database is at revision 9999, which this code does not")
    assert f"(its head is {found.head})" in message
    with engines["devices"].connect() as connection:  # and nothing was changed
        assert current(connection, schema=backend.schema("devices")) == "9999"


def test_the_process_exits_with_one_line_on_an_unknown_revision(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'devices.db'}")
    found = history("devices")
    with engine.begin() as connection:
        upgrade(connection, found)
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    env = {
        **{k: v for k, v in os.environ.items() if k != "IOT_DATABASE_URL"},
        "IOT_DATA_DIR": str(tmp_path),
        "IOT_DEVICES_ADDR": f"127.0.0.1:{free_port()}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "services.devices"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 4, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("devices: cannot start: devices database is at revision 9999")
    assert f"its head is {found.head}" in last
    assert "Traceback" not in done.stderr


async def test_a_database_made_before_migrations_is_adopted(
    backend: Backend, engines: dict[str, Engine]
) -> None:
    found = history("auth")
    engine = engines["auth"]
    # The first revision is exactly what the code before migrations created; without
    # the version table, it is that code's database.
    _migrate(engine, found, backend, target=found.base)
    before = _fill(engine, rows=2)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE alembic_version"))
    database = await open_database(
        service="auth", settings=backend.settings, tables=found, schema=backend.schema("auth")
    )
    await database.close()
    with engine.connect() as connection:
        assert current(connection, schema=backend.schema("auth")) == found.head
        assert differences(connection, found) == []
    after = _counts(engine)
    assert before.pop("user_security") == after["users"] == 2
    assert after == before


def test_a_pre_migration_database_missing_a_column_is_refused_not_stamped(
    backend: Backend, engines: dict[str, Engine]
) -> None:
    found = history("telemetry")
    engine = engines["telemetry"]
    _migrate(engine, found, backend, target=found.base)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE alembic_version"))
        connection.execute(text("ALTER TABLE streams DROP COLUMN sampling_period_us"))
    with pytest.raises(MigrationRefused, match=r"lacks part of revision 0001 \(streams\."):
        _migrate(engine, found, backend)
    with engine.connect() as connection:
        assert current(connection, schema=backend.schema("telemetry")) is None


def test_iot_migrate_applies_reports_and_downgrades(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IOT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("IOT_DATABASE_URL", raising=False)
    heads = {service: history(service).head for service in SERVICES}

    assert iot(["migrate", "--status"]) == 0
    assert "auth       database none" in capsys.readouterr().out

    assert iot(["migrate"]) == 0
    applied = capsys.readouterr().out.splitlines()
    assert applied == [f"{s:<10} empty -> {heads[s]}" for s in SERVICES]

    assert iot(["migrate", "--service", "auth", "--to", "0001"]) == 0
    assert capsys.readouterr().out.strip() == f"auth       {heads['auth']} -> 0001"

    assert iot(["migrate", "--status"]) == 0
    status = capsys.readouterr().out
    assert f"auth       database 0001     head {heads['auth']}  (behind" in status
    assert f"devices    database {heads['devices']:<8} head {heads['devices']}\n" in status

    with sqlite3.connect(tmp_path / "chat.db") as connection:  # as before migrations
        connection.execute("DROP TABLE alembic_version")
    assert iot(["migrate", "--status", "--service", "chat"]) == 0
    assert "chat       database none     head 0001  (empty or made" in capsys.readouterr().out
    assert iot(["migrate", "--service", "chat"]) == 0
    adopted = capsys.readouterr().out.strip()
    assert adopted == "chat       already at 0001 (adopted: stamped 0001 first)"

    assert iot(["migrate", "--to", "0001"]) == 2  # which service's 0001?
    assert iot(["migrate", "--service", "auth", "--to", "0999"]) == 2
    assert "auth has no revision '0999'" in capsys.readouterr().err


async def test_a_migration_longer_than_an_attempt_is_not_cut_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The attempt limit is for a connect that hangs; a slow migration must run to its end.
    monkeypatch.setattr(db, "ATTEMPT_MIN", 0.2)
    monkeypatch.setattr(db, "ATTEMPT_MAX", 0.2)
    calls = []

    def slow_upgrade(connection: Any, found: History, *, schema: str | None) -> Any:
        calls.append(found.service)
        time.sleep(0.5)  # blocks the loop as a long migration's SQL would
        return upgrade(connection, found, schema=schema)

    monkeypatch.setattr(db, "upgrade", slow_upgrade)
    settings = Settings(data_dir=tmp_path, startup_timeout=5)
    database = await open_database(service="chat", settings=settings, tables=history("chat"))
    await database.close()
    assert calls == ["chat"]


def test_replicas_starting_together_migrate_one_after_the_other(
    postgres_url: str, tmp_path: Path
) -> None:
    # Without the advisory lock both would create the tables, and one would fail.
    with open_backend("postgresql", tmp_path) as backend:
        found = history("devices")
        engines = [_engine(backend, "devices") for _ in range(2)]
        try:
            with ThreadPoolExecutor(2) as pool:
                outcomes = list(pool.map(lambda e: _migrate(e, found, backend), engines))
        finally:
            for engine in engines:
                engine.dispose()
    assert sorted((o.before or "", o.after) for o in outcomes) == [
        ("", found.head),
        (found.head, found.head),
    ]


async def test_replicas_starting_together_create_their_schema_one_after_the_other(
    postgres_url: str, tmp_path: Path
) -> None:
    # CREATE SCHEMA IF NOT EXISTS fails when another session creates it at the same moment.
    with open_backend("postgresql", tmp_path) as backend:
        opened = await asyncio.gather(
            *(
                open_database(
                    service="devices",
                    settings=backend.settings,
                    tables=history("devices"),
                    schema=backend.schema("devices"),
                )
                for _ in range(4)
            )
        )
        for database in opened:
            assert database.kind == "postgresql"
            await database.close()


async def test_a_refusal_found_in_the_background_is_logged_and_stays_not_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A service other than auth starts while its database is down; when the database
    # answers, it is at a revision the code does not know.
    monkeypatch.setattr(db, "RETRY_FIRST", 0.01)
    answers: list[BaseException] = [OSError("connection refused"), MigrationRefused("at 9999")]

    async def attempt(_limit: object) -> None:
        raise answers.pop(0)

    settings = Settings(data_dir=tmp_path)
    engine = db._sqlite_engine(tmp_path / "chat.db")
    database = db.Database(engine, async_sessionmaker(engine), "sqlite", None)
    await db._prepare(database, attempt, where="chat.db", settings=settings, wait=False)
    assert database.preparing is not None
    await database.preparing
    assert not database.ready.is_set()
    refused = [r for r in caplog.records if r.getMessage() == "database refused"]
    assert [getattr(r, "reason", None) for r in refused] == ["at 9999"]
    await database.close()
