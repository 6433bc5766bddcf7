"""Shared fixtures: databases (SQLite and the real PostgreSQL), Redis, and running services.

PostgreSQL and Redis come from ``IOT_TEST_DATABASE_URL`` and
``IOT_TEST_REDIS_URL``. When they are not set the PostgreSQL variants are
skipped locally; with ``IOT_TEST_REQUIRE_SERVICES=1`` (as in CI) a missing
one fails the run instead.
"""

from __future__ import annotations

import asyncio
import atexit
import inspect
import io
import logging
import os
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from argon2 import PasswordHasher
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from psycopg import sql

from gateway.settings import GatewaySettings
from iotkit import checks
from iotkit.config import PLACEHOLDER_SECRET, SERVICES, Settings
from iotkit.db import Database, open_database
from iotkit.server import ServiceProcess
from iotsuite.migrate_cli import history
from services.analytics.settings import AnalyticsSettings
from services.auth.settings import AuthSettings
from services.chat.settings import ChatSettings
from services.telemetry.settings import TelemetrySettings
from tests import leak_scan
from tests.support import PASSWORD, free_port

# Property tests judge behaviour, never speed: on a loaded machine Hypothesis's own
# timing checks (a 200 ms deadline per example, "input generation is slow") would fail a
# test that is right.
hypothesis_settings.register_profile(
    "iotsuite", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("iotsuite")

# Cheap argon2 parameters: the tests check behaviour, not hashing cost.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)

leak_scan.register(leak_scan.PASSWORD, PASSWORD)
# The service secret every test suite runs with (the development placeholder).
leak_scan.register(leak_scan.CLIENT_SECRET, PLACEHOLDER_SECRET)


def pytest_configure(config: pytest.Config) -> None:
    """Scan every log record and gateway response of the run for secrets."""
    config.pluginmanager.register(leak_scan, "leak_scan")


TASKS_LEFT_BEHIND_SECONDS = 10.0
_log = logging.getLogger(__name__)


@pytest.fixture(autouse=True)
def _no_slow_dependencies(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dependency check that answers is "healthy" however long it took: "degraded"
    for slowness (over ``checks.SLOW_MS``) is a latency, and a loaded test machine must
    not decide a test's answer (an SMTP NOOP once took over 500 ms in CI). The test of
    that rule sets its own threshold."""
    monkeypatch.setattr(checks, "SLOW_MS", 60_000.0)


LONGEST_FIRST = ("tests/gateway/test_gw_schemathesis.py",)
"""Test files handed to a worker before all others (``make test`` keeps the collected order
with ``--no-loadscope-reorder``): one of two minutes handed out last ran alone at the end of
the run while the other worker idled."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every coroutine test cleans up the tasks it leaves running (see the fixture); first
    in its fixtures, so that its teardown comes after every other one's. The longest files
    come first (:data:`LONGEST_FIRST`)."""
    for item in items:
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj):
            item.fixturenames.insert(0, "_tasks_left_behind")
    items.sort(key=lambda item: item.location[0] not in LONGEST_FIRST)  # stable


@pytest.fixture
async def _tasks_left_behind() -> AsyncIterator[None]:
    """Cancels the tasks a test leaves running once its fixtures are torn down, while the
    loop still serves; a task that will not stop within TASKS_LEFT_BEHIND_SECONDS is
    logged with its stack. Left to the loop's own closing, such a task (a gRPC call
    cancelled after its channel closed) once held a test until pytest-timeout, naming
    nothing but gRPC's poller thread."""
    before = asyncio.all_tasks()
    yield
    current = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
    for task in left:
        task.cancel()
    if not left:
        return
    _, stuck = await asyncio.wait(left, timeout=TASKS_LEFT_BEHIND_SECONDS)
    for task in stuck:
        stack = io.StringIO()
        task.print_stack(file=stack)
        _log.error(
            "a task the test left running did not stop when cancelled:\n%s", stack.getvalue()
        )


def _required(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        if os.environ.get("IOT_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{name} is required when IOT_TEST_REQUIRE_SERVICES=1")
        pytest.skip(f"{name} is not set")
    return value


@dataclass(frozen=True)
class Backend:
    """Where a test's services keep their data: settings plus a schema prefix for PostgreSQL."""

    kind: str
    settings: Settings
    prefix: str

    def schema(self, service: str) -> str | None:
        """The PostgreSQL schema of ``service`` for this test (None on SQLite)."""
        return f"{self.prefix}_{service}" if self.kind == "postgresql" else None

    async def open(self, service: str) -> Database:
        """Open ``service``'s database of this test, migrated as the service would (close it
        after)."""
        return await open_database(
            service=service,
            settings=self.settings,
            tables=history(service),
            schema=self.schema(service),
        )

    async def sql(
        self, service: str, statement: str, params: tuple[object, ...] = ()
    ) -> list[tuple[object, ...]]:
        """Run one statement in ``service``'s own database (``?`` placeholders), in a
        thread: the services run in the test's event loop, and one of them may hold the
        SQLite write lock until the loop lets it commit (a blocking call here would wait
        for a lock that can then never be released)."""
        return await asyncio.to_thread(self._sql, service, statement, params)

    def _sql(
        self, service: str, statement: str, params: tuple[object, ...]
    ) -> list[tuple[object, ...]]:
        if self.kind == "sqlite":
            with sqlite3.connect(
                self.settings.data_dir / f"{service}.db", timeout=30
            ) as connection:
                return list(connection.execute(statement, params).fetchall())
        assert self.settings.database_url
        with psycopg.connect(self.settings.database_url, autocommit=True) as connection:
            connection.execute(
                sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema(service) or ""))
            )
            cursor = connection.execute(statement.replace("?", "%s"), params)  # type: ignore[arg-type]
            return list(cursor.fetchall()) if cursor.description else []


DROP_LOCK_TIMEOUT = "5s"
_HOLDERS = """
    SELECT DISTINCT l.pid, a.state, left(a.query, 120) FROM pg_locks l
    JOIN pg_class c ON c.oid = l.relation
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE n.nspname = %s AND l.pid <> pg_backend_pid()
"""


def _drop_schemas(url: str, prefix: str) -> None:
    """Drop this test's schemas. A connection of the test's in-process services that its
    closed event loop left behind mid-query (its socket open, its server backend still in
    a transaction) would hold a lock in them for as long as this process lives; such
    backends are named in the log and ended, then the drop is tried again."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"SET lock_timeout = '{DROP_LOCK_TIMEOUT}'")
        rows = connection.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (prefix + "\\_%",)
        ).fetchall()
        for (name,) in rows:
            drop = sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name))
            try:
                connection.execute(drop)
            except psycopg.errors.LockNotAvailable:
                holders = connection.execute(_HOLDERS, (name,)).fetchall()
                _log.warning("backends left holding schema %s: %s", name, holders)
                for pid, _state, _query in holders:
                    connection.execute("SELECT pg_terminate_backend(%s)", (pid,))
                connection.execute(drop)


@contextmanager
def open_backend(kind: str, directory: Path) -> Iterator[Backend]:
    """A ``kind`` ("sqlite" or "postgresql") backend with its data under ``directory``;
    PostgreSQL schemas of its own, dropped afterwards (skips when PostgreSQL is not set)."""
    settings = Settings(data_dir=directory / "data")
    if kind == "sqlite":
        yield Backend("sqlite", settings, "")
        return
    url = _required("IOT_TEST_DATABASE_URL")
    prefix = f"t{uuid.uuid4().hex[:12]}"
    try:
        yield Backend("postgresql", settings.model_copy(update={"database_url": url}), prefix)
    finally:
        _drop_schemas(url, prefix)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each test that uses it runs once on SQLite and once on PostgreSQL."""
    with open_backend(request.param, tmp_path) as opened:
        yield opened


@pytest.fixture
def postgres_url() -> str:
    """The real PostgreSQL of the machine."""
    return _required("IOT_TEST_DATABASE_URL")


@pytest.fixture
def redis_url() -> str:
    """The real Redis of the machine."""
    return _required("IOT_TEST_REDIS_URL")


class SuiteSettings(
    AuthSettings, TelemetrySettings, ChatSettings, GatewaySettings, AnalyticsSettings
):
    """Every process's settings in one object, so one value serves each service's wiring
    (and a restart in a test); a real process reads only its own class."""


@dataclass
class Suite:
    """The five services running in this test's event loop."""

    settings: SuiteSettings
    processes: dict[str, ServiceProcess]

    def address(self, service: str) -> str:
        """Where ``service`` listens."""
        return self.settings.address(service)

    async def stop(self, service: str) -> None:
        """Stop one service, as if it crashed."""
        await self.processes.pop(service).aclose(grace=0)

    async def aclose(self) -> None:
        """Stop every service, dependents first (the reverse of the start order), so none
        is left calling one that already stopped (auth, for revocations)."""
        for process in reversed(list(self.processes.values())):
            await process.aclose(grace=0)


_SQLITE_TEMPLATES: dict[str, Path] = {}
"""Each service's SQLite database migrated to its head once in this process: a suite on
SQLite starts from a copy, not from running every migration again (most of a suite's start
on an idle machine). The migrations themselves are tested on empty and older databases in
tests/unit/test_migrations.py and by each service's own start on PostgreSQL."""


async def _sqlite_template(service: str) -> Path:
    """The migrated database of ``service`` that suites on SQLite copy."""
    if service not in _SQLITE_TEMPLATES:
        directory = Path(tempfile.mkdtemp(prefix="iot-sqlite-templates-"))
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        database = await open_database(
            service=service, settings=Settings(data_dir=directory), tables=history(service)
        )
        await database.engine.dispose()  # the last connection's close empties the WAL
        _SQLITE_TEMPLATES[service] = directory / f"{service}.db"
    return _SQLITE_TEMPLATES[service]


async def _seed_sqlite(data_dir: Path, services: tuple[str, ...]) -> None:
    """Give each of ``services`` without a database under ``data_dir`` a migrated copy,
    owner-only as the service makes it; a database already there (a restart, an old
    release's database of a migration test) is left as it is."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for service in services:
        target = data_dir / f"{service}.db"
        if not target.exists():
            shutil.copyfile(await _sqlite_template(service), target)
            target.chmod(0o600)


async def start_suite(
    backend: Backend,
    services: tuple[str, ...] = SERVICES,
    *,
    hasher: PasswordHasher | None = FAST_HASHER,
    **settings_changes: Any,
) -> Suite:
    """Start ``services`` on free ports with the real wiring of each; ``settings_changes``
    are fields of :class:`SuiteSettings` to change from the backend's (``max_active_batches=2``).

    ``hasher`` is auth's password hasher; None leaves the wiring to build its own (the
    production parameters, slow on purpose)."""
    from services.analytics.wiring import build as build_analytics
    from services.auth.wiring import build as build_auth
    from services.chat.wiring import build as build_chat
    from services.devices.wiring import build as build_devices
    from services.telemetry.wiring import build as build_telemetry

    builders = {
        "devices": build_devices,
        "telemetry": build_telemetry,
        "analytics": build_analytics,
        "chat": build_chat,
    }
    addresses = {name: f"127.0.0.1:{free_port()}" for name in SERVICES}
    settings = SuiteSettings(
        **{**backend.settings.model_dump(), "addresses": addresses, **settings_changes}
    )
    if backend.kind == "sqlite":
        await _seed_sqlite(settings.data_dir, services)
    processes: dict[str, ServiceProcess] = {}
    for name in services:
        if name == "auth":
            process = await build_auth(
                settings, address=addresses[name], schema=backend.schema(name), hasher=hasher
            )
        else:
            process = await builders[name](
                settings, address=addresses[name], schema=backend.schema(name)
            )
        await process.built.start()
        processes[name] = process
    return Suite(settings, processes)


@asynccontextmanager
async def suite_with_gateway(
    backend: Backend, services: tuple[str, ...] = SERVICES, **changes: Any
) -> AsyncIterator[tuple[Suite, httpx.AsyncClient]]:
    """``services`` (every one by default) and a REST client of a gateway in front of them."""
    from gateway.serve import start_gateway, stop_gateway

    suite = await start_suite(backend, services, **changes)
    server, port, task = await start_gateway(suite.settings, "127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=15, event_hooks=leak_scan.response_hooks()
        ) as http:
            yield suite, http
    finally:
        await stop_gateway(server, task)
        await suite.aclose()


@pytest.fixture(scope="session")
def mosquitto_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A broker directory prepared once (``mosquitto_ctrl dynsec init``), copied per test."""
    from iotsuite import mosquitto

    if not mosquitto.available():
        message = "mosquitto and its dynamic-security plugin are not installed"
        if os.environ.get("IOT_TEST_REQUIRE_MOSQUITTO") == "1":  # CI installs them
            pytest.fail(message)
        pytest.skip(message)
    directory = tmp_path_factory.mktemp("mosquitto")
    mosquitto.prepare(directory, port=free_port(), persistent=False)
    return directory


@pytest.fixture
def mosquitto_url(mosquitto_template: Path, tmp_path: Path) -> Iterator[str]:
    """``IOT_MQTT_URL`` of a Mosquitto of this test's own, on a free port: a fresh broker
    per test (it starts in milliseconds) so that no session a test leaves behind takes a
    share of the next test's messages."""
    import shutil

    from iotsuite import mosquitto

    directory = tmp_path / "mosquitto"
    shutil.copytree(mosquitto_template, directory)
    broker = mosquitto.prepare(directory, port=free_port(), persistent=False)
    process = mosquitto.start(broker)
    yield broker.url
    mosquitto.stop(process)


@pytest.fixture
async def suite(backend: Backend) -> AsyncIterator[Suite]:
    """All five services, on SQLite and on PostgreSQL."""
    running = await start_suite(backend)
    yield running
    await running.aclose()


@pytest.fixture
async def auth_only(backend: Backend) -> AsyncIterator[Suite]:
    """Just the auth service, on SQLite and on PostgreSQL."""
    running = await start_suite(backend, ("auth",))
    yield running
    await running.aclose()
