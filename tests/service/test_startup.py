"""A service started while its database is down starts at once, reports NOT_SERVING and
answers UNAVAILABLE, and turns SERVING when the database answers; auth, which holds the
signing keys in its database, waits for it within ``IOT_STARTUP_TIMEOUT``.

The database "comes back" as a small TCP proxy that starts listening, on a
port where nothing listened before, in front of the machine's PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import psycopg
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from psycopg import sql
from sqlalchemy import MetaData, text
from sqlalchemy.engine import make_url

from iot.devices.v1 import devices_pb2, devices_pb2_grpc
from iotkit.config import Settings
from iotkit.db import DatabaseUnavailable, open_database
from services.devices.wiring import build as build_devices
from tests import leak_scan
from tests.support import free_port

PASSWORD = "pw-never-logged-9f3a"
leak_scan.register(leak_scan.PASSWORD, PASSWORD)


def on_port(url: str, port: int, *, password: str | None = None) -> str:
    """``url`` pointed at 127.0.0.1:``port`` (optionally with a password)."""
    moved = make_url(url).set(host="127.0.0.1", port=port)
    if password is not None:
        moved = moved.set(password=password)
    return moved.render_as_string(hide_password=False)


@asynccontextmanager
async def tcp_proxy(port: int, target: tuple[str, int]) -> AsyncIterator[None]:
    """Listen on 127.0.0.1:``port`` and forward every connection to ``target``."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    pipes: set[asyncio.Task[None]] = set()

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*target)
        for task in (
            asyncio.create_task(pipe(reader, upstream_writer)),
            asyncio.create_task(pipe(upstream_reader, writer)),
        ):
            pipes.add(task)
            task.add_done_callback(pipes.discard)

    server = await asyncio.start_server(forward, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
        for task in list(pipes):
            task.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)


def drop_schema(url: str, name: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


async def health(address: str) -> int:
    async with aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        return int(reply.status)


async def test_a_service_started_before_its_database_serves_once_it_answers(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    real = make_url(postgres_url)
    port = free_port()
    settings = Settings(database_url=on_port(postgres_url, port), startup_timeout=1)
    schema = f"t{uuid.uuid4().hex[:12]}_devices"
    address = f"127.0.0.1:{free_port()}"
    caplog.set_level(logging.WARNING, logger="iotkit.db")
    # It starts at once, however long the database stays away (past IOT_STARTUP_TIMEOUT).
    process = await asyncio.wait_for(build_devices(settings, address=address, schema=schema), 20)
    try:
        await process.built.start()
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        assert await health(address) == not_serving
        await asyncio.sleep(1.5)
        assert await health(address) == not_serving
        retries = [
            r for r in caplog.records if r.getMessage() == "database not reachable, retrying"
        ]
        assert retries, "each failed attempt is logged"
        assert all(r.exc_info is None for r in retries)
        assert all(getattr(r, "reason", "") for r in retries)
        # Its API answers UNAVAILABLE meanwhile, with a retry delay.
        async with aio.insecure_channel(address) as channel:
            with pytest.raises(aio.AioRpcError) as refused:
                await devices_pb2_grpc.DeviceServiceStub(channel).ListDevices(
                    devices_pb2.ListDevicesRequest(), timeout=5
                )
            assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        async with tcp_proxy(port, (real.host or "127.0.0.1", real.port or 5432)):
            serving = health_pb2.HealthCheckResponse.SERVING
            deadline = asyncio.get_running_loop().time() + 20
            while await health(address) != serving:
                assert asyncio.get_running_loop().time() < deadline, "never turned SERVING"
                await asyncio.sleep(0.2)
    finally:
        await process.aclose(grace=0)
        drop_schema(postgres_url, schema)


async def test_a_database_that_never_answers_fails_the_start_clearly(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    url = on_port(postgres_url, port, password=PASSWORD)
    settings = Settings(database_url=url, startup_timeout=1.5)
    caplog.set_level(logging.WARNING, logger="iotkit.db")
    started = asyncio.get_running_loop().time()

    # Auth waits for its database (it holds the signing keys) and gives up clearly.
    with pytest.raises(DatabaseUnavailable) as failure:
        await open_database(service="auth", settings=settings, tables=MetaData())

    assert asyncio.get_running_loop().time() - started < 10
    message = str(failure.value)
    assert f"127.0.0.1:{port}" in message
    assert "not reachable after" in message and "IOT_STARTUP_TIMEOUT" in message
    assert PASSWORD not in message
    assert len(caplog.records) >= 2
    assert all(PASSWORD not in r.getMessage() + repr(r.__dict__) for r in caplog.records)


def test_the_process_exits_with_one_line_when_its_database_stays_down(
    postgres_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "IOT_DATABASE_URL": on_port(postgres_url, port, password=PASSWORD),
        "IOT_STARTUP_TIMEOUT": "1",
        "IOT_AUTH_ADDR": f"127.0.0.1:{free_port()}",
        "IOT_DATA_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "services.auth"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("auth: cannot start: database postgresql")
    assert "not reachable after" in last
    assert "Traceback" not in done.stderr
    assert PASSWORD not in done.stderr


async def test_service_connections_carry_the_server_side_guards(postgres_url: str) -> None:
    """A service's PostgreSQL session asks the server to end a transaction left idle and
    a query whose client has gone (see ``iotkit.db._SERVER_GUARDS``)."""
    schema = f"t{uuid.uuid4().hex[:12]}_guards"
    database = await open_database(
        service="devices",
        settings=Settings(database_url=postgres_url),
        tables=MetaData(),
        schema=schema,
    )
    try:
        async with database.engine.connect() as connection:
            idle = await connection.scalar(
                text("SELECT current_setting('idle_in_transaction_session_timeout')")
            )
            check = await connection.scalar(
                text("SELECT current_setting('client_connection_check_interval')")
            )
            path = await connection.scalar(text("SELECT current_setting('search_path')"))
        assert (idle, check) == ("1min", "5s")
        assert path == schema
    finally:
        await database.close()
        drop_schema(postgres_url, schema)
