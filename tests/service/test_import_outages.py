"""A file import that meets a database outage is finished once the database answers.

The fault run (PostgreSQL restarted under ``iot up`` mid-import) left the file
PROCESSING ("Importing") for good, with two tracebacks at ERROR, until
telemetry was restarted; a telemetry restarted while the database was down
never looked for its unfinished files again. Here the outage is the driver's
own ``OperationalError`` raised by the real store at the moment it would
write (the shared PostgreSQL is not restarted from tests).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

import pytest

from services.telemetry.imports import processor
from services.telemetry.imports.store import ImportStore
from tests.conftest import Backend
from tests.service.outage_support import fail_first
from tests.service.test_imports import (
    Env,
    device,
    epoch,
    errors,
    finished,
    new_batch,
    restart_telemetry,
    running,
    stream_values,
    upload,
    user,
)


@pytest.fixture
async def env(backend: Backend) -> AsyncIterator[Env]:
    async with running(backend) as started:
        yield started


def quick_retries(monkeypatch: pytest.MonkeyPatch, method: str, times: int) -> Callable[[], int]:
    """``ImportStore.<method>`` away its first ``times`` calls, and retries a moment apart."""
    monkeypatch.setattr(processor, "RETRY_FIRST", 0.1)
    return fail_first(monkeypatch, ImportStore, method, times)


def no_import_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == processor.__name__ and r.levelno >= logging.ERROR
    ]


async def test_an_import_that_meets_an_outage_is_tried_again_not_failed(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ann = await user(env)
    sensor = await device(env, ann)
    batch = await new_batch(env, ann, sensor)
    calls = quick_retries(monkeypatch, "save_progress", 2)
    content = f"timestamp,value\n{epoch(0)},1\n{epoch(1)},x\n{epoch(2)},3\n".encode()
    with caplog.at_level(logging.WARNING, logger=processor.__name__):
        file = await upload(env, ann, content, format="csv", batch_id=batch.id, metric_name="t")
    assert calls() >= 3
    assert file.status == "COMPLETED", file.message
    assert file.progress.rows_imported == 2
    assert await stream_values(env, ann, sensor, "t") == [1.0, 3.0]
    log = await errors(env, ann, batch.id)
    assert [(e.metadata.row, e.metadata.column) for e in log.content] == [(3, "value")]
    assert no_import_errors(caplog) == []
    assert any("retrying" in r.getMessage() for r in caplog.records)


async def test_unfinished_imports_are_found_once_the_database_answers(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ann = await user(env)
    sensor = await device(env, ann)
    content = f"timestamp,value\n{epoch(0)},1\n{epoch(1)},2\n".encode()
    file = await upload(env, ann, content, format="csv", device_id=sensor, metric_name="t")
    assert file.status == "COMPLETED"
    # As if telemetry had died mid-import, and starts again while the database is away.
    await env.backend.sql(
        "telemetry", "UPDATE uploaded_files SET status = 'PROCESSING' WHERE id = ?", (file.id,)
    )
    calls = quick_retries(monkeypatch, "reset_interrupted_uploads", 2)
    with caplog.at_level(logging.WARNING, logger=processor.__name__):
        await restart_telemetry(env)
        again = await finished(env, ann, file.id)
    assert calls() == 3
    assert again.status == "COMPLETED", again.message
    assert (again.progress.rows_imported, again.progress.rows_duplicate) == (2, 2)
    assert no_import_errors(caplog) == []
