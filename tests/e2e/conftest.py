"""End-to-end fixtures: a database of the test's own, and the leak scan of the logs the
test's processes wrote.

On PostgreSQL a database made for the test, so that services started as
processes take their default schemas in it, as in production.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from iotkit.config import Settings
from tests.conftest import _required
from tests.leak_scan import scan_log


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for SQLite; otherwise a PostgreSQL database made for this test and dropped after."""
    if request.param == "sqlite":
        yield None
        return
    admin_url = _required("IOT_TEST_DATABASE_URL")
    name = f"iot_e2e_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base, _, _ = admin_url.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def settings(database_url: str | None, tmp_path: Path) -> Settings:
    """Settings on SQLite, then on a PostgreSQL database made for the test."""
    base = Settings(data_dir=tmp_path / "data")
    return base if database_url is None else base.model_copy(update={"database_url": database_url})


@pytest.fixture(autouse=True)
def logs_without_secrets(tmp_path: Path) -> Iterator[None]:
    """After the test, every ``*.log`` its processes wrote under ``tmp_path`` holds no
    secret (the services run as processes here, out of the in-process scan's sight)."""
    yield
    for path in sorted(tmp_path.rglob("*.log")):
        kinds = scan_log(path.read_text(errors="replace"), f"log file {path.name}")
        assert not kinds, f"{path.name} holds a {', '.join(kinds)}"
