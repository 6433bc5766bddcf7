"""File import over real gRPC with auth and devices beside it, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from openpyxl import Workbook

from iot.auth.v1 import auth_pb2_grpc
from iot.common.v1 import common_pb2
from iot.devices.v1 import devices_pb2, devices_pb2_grpc
from iot.telemetry.v1 import imports_pb2, imports_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc
from iotkit.errors import reason_of, violations_of
from services.telemetry import wiring as telemetry_wiring
from tests.conftest import Backend, Suite, start_suite
from tests.support import bearer, new_user

Who = list[tuple[str, str]]
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)


@dataclass
class Env:
    auth: auth_pb2_grpc.AuthServiceStub
    devices: devices_pb2_grpc.DeviceServiceStub
    telemetry: telemetry_pb2_grpc.TelemetryServiceStub
    imports: imports_pb2_grpc.ImportServiceStub
    suite: Suite
    backend: Backend


@asynccontextmanager
async def running(backend: Backend, **settings_changes: Any) -> AsyncIterator[Env]:
    """Auth, devices and telemetry, with at most 3 open batches per user."""
    changes = {"max_active_batches": 3, **settings_changes}
    suite = await start_suite(backend, ("auth", "devices", "telemetry"), **changes)
    try:
        async with (
            grpc.aio.insecure_channel(suite.address("auth")) as a,
            grpc.aio.insecure_channel(suite.address("devices")) as d,
            grpc.aio.insecure_channel(suite.address("telemetry")) as t,
        ):
            yield Env(
                auth_pb2_grpc.AuthServiceStub(a),
                devices_pb2_grpc.DeviceServiceStub(d),
                telemetry_pb2_grpc.TelemetryServiceStub(t),
                imports_pb2_grpc.ImportServiceStub(t),
                suite,
                backend,
            )
    finally:
        await suite.aclose()


@pytest.fixture
async def env(backend: Backend) -> AsyncIterator[Env]:
    async with running(backend) as started:
        yield started


async def restart_telemetry(env: Env) -> None:
    """Stop telemetry as if it crashed, and start it again on the same database."""
    await env.suite.stop("telemetry")
    restarted = await telemetry_wiring.build(
        env.suite.settings,
        address=env.suite.address("telemetry"),
        schema=env.backend.schema("telemetry"),
    )
    await restarted.built.start()
    env.suite.processes["telemetry"] = restarted


async def user(env: Env) -> Who:
    return bearer((await new_user(env.auth)).access_token)


async def device(env: Env, who: Who) -> str:
    registered = await env.devices.RegisterDevice(
        devices_pb2.RegisterDeviceRequest(name="logger", type="temperature"), metadata=who
    )
    return str(registered.device_id)


def iso(seconds: int) -> str:
    return (BASE + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def epoch(seconds: int) -> int:
    return int((BASE + timedelta(seconds=seconds)).timestamp())


def xlsx(rows: list[list[object]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def announce(env: Env, who: Who, **fields: Any) -> imports_pb2.CreateUploadResponse:
    return await env.imports.CreateUpload(imports_pb2.CreateUploadRequest(**fields), metadata=who)


async def send(env: Env, who: Who, file_id: str, content: bytes, piece: int = 7000):  # type: ignore[no-untyped-def]
    async def chunks() -> AsyncIterator[imports_pb2.UploadContentChunk]:
        yield imports_pb2.UploadContentChunk(file_id=file_id)
        for offset in range(0, len(content), piece):
            yield imports_pb2.UploadContentChunk(data=content[offset : offset + piece])
        yield imports_pb2.UploadContentChunk(finish_write=True)

    return await env.imports.UploadContent(chunks(), metadata=who)


async def finished(env: Env, who: Who, file_id: str) -> imports_pb2.FileUpload:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        file = await env.imports.GetUpload(
            imports_pb2.GetUploadRequest(file_id=file_id), metadata=who
        )
        if file.status in ("COMPLETED", "FAILED"):
            return file
        await asyncio.sleep(0.05)
    raise AssertionError(f"file {file_id} never finished")


async def upload(env: Env, who: Who, content: bytes, **fields: object) -> imports_pb2.FileUpload:
    created = await announce(env, who, **fields)
    assert created.status == "PENDING"
    assert created.upload_url == f"/v1/uploads/{created.file_id}/content"
    await send(env, who, created.file_id, content)
    return await finished(env, who, created.file_id)


async def errors(env: Env, who: Who, batch_id: str, **query: Any) -> imports_pb2.ErrorLogPage:
    return await env.imports.ListBatchErrors(
        imports_pb2.ListBatchErrorsRequest(batch_id=batch_id, **query), metadata=who
    )


async def stream_values(env: Env, who: Who, device_id: str, metric: str) -> list[float]:
    streams = await env.telemetry.ListStreams(
        telemetry_pb2.ListStreamsRequest(device_id=device_id), metadata=who
    )
    found = [s for s in streams.streams if s.metric_name == metric]
    if not found:
        return []
    data = await env.telemetry.GetStreamData(
        telemetry_pb2.GetStreamDataRequest(stream_id=found[0].stream_id, max_points=10_000),
        metadata=who,
    )
    return [point.value for point in data.data]


async def stream_count(env: Env, who: Who, device_id: str, metric: str) -> int:
    streams = await env.telemetry.ListStreams(
        telemetry_pb2.ListStreamsRequest(device_id=device_id), metadata=who
    )
    return sum(s.readings_count for s in streams.streams if s.metric_name == metric)


async def new_batch(env: Env, who: Who, device_id: str = "") -> imports_pb2.Batch:
    return await env.imports.CreateBatch(
        imports_pb2.CreateBatchRequest(device_id=device_id), metadata=who
    )


async def test_csv_json_and_xlsx_import_through_a_batch(env: Env) -> None:
    ann = await user(env)
    sensor = await device(env, ann)
    batch = await new_batch(env, ann, sensor)
    assert (batch.status, batch.id, batch.batch_id) == ("ACTIVE", batch.id, batch.id)
    assert batch.s3_path == f"batches/{batch.id}/" and batch.device_id == sensor
    assert batch.HasField("expires_at") and not batch.HasField("completed_at")

    csv_content = (
        "timestamp,value\n"
        f"{iso(0)},20.5\n"
        f"{iso(60)},not-a-number\n"
        f"{epoch(120)},21.0\n"
        f"yesterday,22\n"
        f"{epoch(180) * 1000},21.5\n"
    ).encode()
    csv_file = await upload(
        env, ann, csv_content, format="csv", batch_id=batch.id, metric_name="temp"
    )
    assert csv_file.status == "COMPLETED", csv_file.message
    assert csv_file.checksum == hashlib.md5(csv_content).hexdigest()
    assert csv_file.file_size == len(csv_content)
    assert csv_file.s3_key.startswith(f"batches/{batch.id}/{csv_file.id}/")
    progress = csv_file.progress
    assert (progress.rows_total, progress.rows_imported, progress.rows_rejected) == (5, 3, 2)

    json_content = json.dumps(
        {
            "readings": [
                {"timestamp": iso(240), "value": 30},
                {"timestamp": iso(300), "metric_name": "humidity", "value": 55.5},
                {"timestamp": iso(360)},
                {"timestamp": iso(420), "value": True},
                {"timestamp": epoch(480) * 1000, "value": "31.25"},
            ]
        }
    ).encode()
    json_file = await upload(
        env, ann, json_content, format="json", batch_id=batch.id, metric_name="temp"
    )
    assert json_file.status == "COMPLETED", json_file.message
    assert (json_file.progress.rows_imported, json_file.progress.rows_rejected) == (3, 2)

    book = xlsx(
        [
            ["Timestamp", "Value", "Metric_Name"],
            [BASE.replace(tzinfo=None) + timedelta(seconds=540), 40.0, "temp"],
            [iso(600), "oops", "temp"],
            [epoch(660), 41, "bad metric!"],
            [None, None, None],
            [epoch(720), 42, None],
        ]
    )
    xlsx_file = await upload(
        env, ann, book, format="xlsx", batch_id=batch.id, filename="../../etc/passwd.xlsx"
    )
    assert xlsx_file.status == "COMPLETED", xlsx_file.message
    assert (xlsx_file.progress.rows_imported, xlsx_file.progress.rows_rejected) == (1, 3)
    assert xlsx_file.filename == "../../etc/passwd.xlsx"
    assert ".." not in xlsx_file.s3_key and xlsx_file.s3_key.endswith("/passwd.xlsx")

    assert await stream_values(env, ann, sensor, "temp") == [20.5, 21.0, 21.5, 30.0, 31.25, 40.0]
    assert await stream_values(env, ann, sensor, "humidity") == [55.5]

    log = await errors(env, ann, batch.id, limit=100)
    seen = {(e.metadata.filename, e.metadata.row, e.metadata.column) for e in log.content}
    assert seen == {
        ("upload.csv", 3, "value"),
        ("upload.csv", 5, "timestamp"),
        ("upload.json", 3, "value"),
        ("upload.json", 4, "value"),
        ("../../etc/passwd.xlsx", 3, "value"),
        ("../../etc/passwd.xlsx", 4, "metric_name"),
        ("../../etc/passwd.xlsx", 6, "metric_name"),
    }
    assert {(e.severity, e.source, e.batch_id) for e in log.content} == {
        ("ERROR", "validation", batch.id)
    }
    assert log.pagination == common_pb2.Pagination(page=1, limit=100, total=7, total_pages=1)
    page = await errors(env, ann, batch.id, limit=3, page=3)
    assert len(page.content) == 1
    assert page.pagination == common_pb2.Pagination(page=3, limit=3, total=7, total_pages=3)
    only_json = await errors(env, ann, batch.id, file_id=json_file.id)
    assert only_json.pagination.total == 2

    done = await env.imports.CompleteBatch(
        imports_pb2.CompleteBatchRequest(batch_id=batch.id), metadata=ann
    )
    assert done.status == "COMPLETED" and done.HasField("completed_at")
    assert done.uploaded_files_count == 3 and done.has_errors and done.error_count == 7
    assert done.total_size == len(csv_content) + len(json_content) + len(book)
    files = await env.imports.ListBatchFiles(
        imports_pb2.ListBatchFilesRequest(batch_id=batch.id), metadata=ann
    )
    assert [f.id for f in files.files] == [csv_file.id, json_file.id, xlsx_file.id]


async def test_uploading_the_same_file_again_stores_nothing_twice(env: Env) -> None:
    ann = await user(env)
    sensor = await device(env, ann)
    batch = await new_batch(env, ann, sensor)
    # More rows than one import chunk, so de-duplication spans chunks.
    lines = ["timestamp,value"] + [f"{epoch(i)},{i % 97 / 4}" for i in range(25_000)]
    content = "\n".join(lines).encode()
    first = await upload(env, ann, content, format="csv", batch_id=batch.id, metric_name="t")
    assert first.status == "COMPLETED" and first.progress.rows_imported == 25_000
    again = await upload(env, ann, content, format="csv", batch_id=batch.id, metric_name="t")
    assert again.status == "COMPLETED"
    assert again.duplicate_of == first.id
    assert (again.progress.rows_imported, again.progress.rows_duplicate) == (25_000, 25_000)
    assert "Same content" in again.message
    notices = await errors(env, ann, batch.id, severity="WARN")
    assert [(e.source, e.file_id) for e in notices.content] == [("checksum", again.id)]
    assert await stream_count(env, ann, sensor, "t") == 25_000
    batch_now = await env.imports.GetBatch(
        imports_pb2.GetBatchRequest(batch_id=batch.id), metadata=ann
    )
    assert not batch_now.has_errors and batch_now.uploaded_files_count == 2


@pytest.mark.parametrize(
    ("fields", "content", "source", "column", "words"),
    [
        (
            {"format": "csv", "expected_columns": ["timestamp", "value", "site"]},
            b"timestamp,value\n2026-01-01T00:00:00Z,1\n",
            "validation",
            "site",
            "Expected column",
        ),
        ({"format": "csv"}, b"time,value\n1,2\n", "validation", "timestamp", "no 'timestamp'"),
        (
            {"format": "json", "expected_columns": ["unit"]},
            b'[{"timestamp": 1700000000, "value": 1}]',
            "validation",
            "unit",
            "Expected column",
        ),
        (
            {"format": "csv"},
            "timestamp,value\n1700000000,19°\n".encode("latin-1"),
            "parse",
            "",
            "UTF-8",
        ),
        ({"format": "xlsx"}, b"timestamp,value\n1700000000,1\n", "parse", "", "not an XLSX"),
        ({"format": "json"}, b'{"rows": []}', "parse", "", '"readings"'),
        ({"format": "json"}, b'[{"timestamp": 1700000000, "value": 1', "parse", "", "malformed"),
    ],
)
async def test_a_file_that_cannot_be_read_fails_with_its_reason(
    env: Env, fields: dict[str, object], content: bytes, source: str, column: str, words: str
) -> None:
    ann = await user(env)
    sensor = await device(env, ann)
    batch = await new_batch(env, ann, sensor)
    file = await upload(env, ann, content, batch_id=batch.id, metric_name="temp", **fields)
    assert file.status == "FAILED" and words in file.message
    (entry,) = (await errors(env, ann, batch.id)).content
    assert (entry.severity, entry.source, entry.metadata.column) == ("ERROR", source, column)
    assert words in entry.message and entry.file_id == file.id
    assert await stream_values(env, ann, sensor, "temp") == []
    completed = await env.imports.CompleteBatch(
        imports_pb2.CompleteBatchRequest(batch_id=batch.id), metadata=ann
    )
    assert completed.status == "FAILED" and completed.has_errors


async def test_a_checksum_mismatch_fails_the_file_and_imports_nothing(env: Env) -> None:
    ann = await user(env)
    sensor = await device(env, ann)
    batch = await new_batch(env, ann, sensor)
    content = f"timestamp,value\n{epoch(0)},1\n".encode()
    created = await announce(
        env, ann, format="csv", batch_id=batch.id, metric_name="temp", checksum="0" * 32
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await send(env, ann, created.file_id, content)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in violations_of(caught.value)] == ["checksum"]
    file = await finished(env, ann, created.file_id)
    assert file.status == "FAILED" and "Checksum mismatch" in file.message
    assert file.checksum == hashlib.md5(content).hexdigest() and file.expected_checksum == "0" * 32
    (entry,) = (await errors(env, ann, batch.id)).content
    assert (entry.severity, entry.source) == ("ERROR", "checksum")
    assert await stream_values(env, ann, sensor, "temp") == []
    # The right checksum, in capitals, is accepted.
    right = await upload(
        env,
        ann,
        content,
        format="csv",
        batch_id=batch.id,
        metric_name="temp",
        checksum=hashlib.md5(content).hexdigest().upper(),
    )
    assert right.status == "COMPLETED"


async def test_rows_may_name_their_device_but_only_one_the_uploader_may_write(env: Env) -> None:
    ann, bob = await user(env), await user(env)
    first, second, foreign = await device(env, ann), await device(env, ann), await device(env, bob)
    content = (
        "device_id,metric_name,timestamp,value\n"
        f"{first},temp,{epoch(0)},1\n"
        f"{second},temp,{epoch(0)},2\n"
        f"{foreign},temp,{epoch(0)},3\n"
        f"not-a-uuid,temp,{epoch(0)},4\n"
    ).encode()
    # A file may stand alone, outside any batch.
    file = await upload(env, ann, content, format="csv")
    assert file.status == "COMPLETED" and file.batch_id == ""
    assert file.s3_key.startswith(f"uploads/{file.id}/")
    assert (file.progress.rows_imported, file.progress.rows_rejected) == (2, 2)
    assert await stream_values(env, ann, first, "temp") == [1.0]
    assert await stream_values(env, ann, second, "temp") == [2.0]
    assert await stream_values(env, bob, foreign, "temp") == []
    log = await env.imports.ListUploadErrors(
        imports_pb2.ListUploadErrorsRequest(file_id=file.id), metadata=ann
    )
    assert [(e.metadata.row, e.metadata.column) for e in log.content] == [
        (4, "device_id"),
        (5, "device_id"),
    ]
    assert all(e.batch_id == "" for e in log.content)


async def test_batch_lifecycle(env: Env) -> None:
    ann = await user(env)
    sensor = await device(env, ann)
    batch = await new_batch(env, ann)
    waiting = await announce(env, ann, format="csv", batch_id=batch.id, device_id=sensor)
    done = await env.imports.CompleteBatch(
        imports_pb2.CompleteBatchRequest(batch_id=batch.id), metadata=ann
    )
    # The file whose content never came fails, and with it the batch.
    assert done.status == "FAILED" and done.HasField("completed_at")
    assert not done.HasField("expires_at")
    pending = await env.imports.GetUpload(
        imports_pb2.GetUploadRequest(file_id=waiting.file_id), metadata=ann
    )
    assert pending.status == "FAILED" and "completed before" in pending.message

    for call in (env.imports.CompleteBatch, env.imports.CancelBatch):
        request_class = (
            imports_pb2.CompleteBatchRequest
            if call is env.imports.CompleteBatch
            else imports_pb2.CancelBatchRequest
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(request_class(batch_id=batch.id), metadata=ann)
        assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert reason_of(caught.value) == "BATCH_NOT_ACTIVE"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await announce(env, ann, format="csv", batch_id=batch.id, device_id=sensor)
    assert reason_of(caught.value) == "BATCH_NOT_ACTIVE"

    clean = await new_batch(env, ann, sensor)
    empty = await env.imports.CompleteBatch(
        imports_pb2.CompleteBatchRequest(batch_id=clean.id), metadata=ann
    )
    assert empty.status == "COMPLETED" and not empty.has_errors

    other = await new_batch(env, ann, sensor)
    announced = await announce(env, ann, format="csv", batch_id=other.id)
    cancelled = await env.imports.CancelBatch(
        imports_pb2.CancelBatchRequest(batch_id=other.id), metadata=ann
    )
    assert cancelled.status == "CANCELLED" and cancelled.HasField("completed_at")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await send(env, ann, announced.file_id, b"timestamp,value\n")
    assert reason_of(caught.value) == "BATCH_NOT_ACTIVE"
    listed = await env.imports.ListBatches(imports_pb2.ListBatchesRequest(), metadata=ann)
    assert [b.id for b in listed.batches] == [other.id, clean.id, batch.id]
    assert listed.pagination.total == 3
    only = await env.imports.ListBatches(
        imports_pb2.ListBatchesRequest(status="cancelled"), metadata=ann
    )
    assert [b.id for b in only.batches] == [other.id]


async def test_an_owner_has_at_most_the_configured_number_of_active_batches(env: Env) -> None:
    ann, bob = await user(env), await user(env)
    batches = [await new_batch(env, ann) for _ in range(3)]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await new_batch(env, ann)
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(caught.value) == "TOO_MANY_ACTIVE_BATCHES"
    assert "3 active batches" in (caught.value.details() or "")
    assert (await new_batch(env, bob)).status == "ACTIVE"  # a limit per owner
    await env.imports.CancelBatch(
        imports_pb2.CancelBatchRequest(batch_id=batches[0].id), metadata=ann
    )
    assert (await new_batch(env, ann)).status == "ACTIVE"


async def test_concurrent_batch_starts_never_pass_the_limit(env: Env) -> None:
    ann = await user(env)
    outcomes = await asyncio.gather(
        *(new_batch(env, ann) for _ in range(8)), return_exceptions=True
    )
    started = [o for o in outcomes if isinstance(o, imports_pb2.Batch)]
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(started) == 3 and len(refused) == 5
    assert {reason_of(r) for r in refused} == {"TOO_MANY_ACTIVE_BATCHES"}


async def test_a_batch_left_active_expires(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telemetry_wiring, "BATCH_EXPIRY_PERIOD", 0.05)
    async with running(backend, batch_max_age_hours=0.3 / 3600) as env:
        ann = await user(env)
        sensor = await device(env, ann)
        batch = await new_batch(env, ann, sensor)
        waiting = await announce(env, ann, format="csv", batch_id=batch.id)
        deadline = time.monotonic() + 30
        while batch.status == "ACTIVE" and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            batch = await env.imports.GetBatch(
                imports_pb2.GetBatchRequest(batch_id=batch.id), metadata=ann
            )
        assert batch.status == "EXPIRED" and batch.HasField("completed_at")
        (entry,) = (await errors(env, ann, batch.id)).content
        assert (entry.severity, entry.source) == ("WARN", "expiry")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await send(env, ann, waiting.file_id, b"timestamp,value\n")
        assert reason_of(caught.value) == "BATCH_NOT_ACTIVE"


async def test_a_user_cannot_attach_a_batch_to_a_site(env: Env) -> None:
    # Only a site attaches a batch to a site, its own: a user naming any site id (another
    # account's included) gets SITE_NOT_FOUND, and no batch claims that site.
    ann = await user(env)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.imports.CreateBatch(
            imports_pb2.CreateBatchRequest(site_id=str(uuid.uuid4())), metadata=ann
        )
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    assert reason_of(caught.value) == "SITE_NOT_FOUND"
    listed = await env.imports.ListBatches(imports_pb2.ListBatchesRequest(), metadata=ann)
    assert list(listed.batches) == []


async def test_another_users_batches_and_uploads_are_not_found(env: Env) -> None:
    ann, bob = await user(env), await user(env)
    sensor = await device(env, ann)
    batch = await new_batch(env, ann, sensor)
    created = await announce(env, ann, format="csv", batch_id=batch.id)
    calls = [
        env.imports.GetBatch(imports_pb2.GetBatchRequest(batch_id=batch.id), metadata=bob),
        env.imports.CompleteBatch(
            imports_pb2.CompleteBatchRequest(batch_id=batch.id), metadata=bob
        ),
        env.imports.CancelBatch(imports_pb2.CancelBatchRequest(batch_id=batch.id), metadata=bob),
        env.imports.ListBatchFiles(
            imports_pb2.ListBatchFilesRequest(batch_id=batch.id), metadata=bob
        ),
        env.imports.ListBatchErrors(
            imports_pb2.ListBatchErrorsRequest(batch_id=batch.id), metadata=bob
        ),
        env.imports.GetUpload(imports_pb2.GetUploadRequest(file_id=created.file_id), metadata=bob),
        env.imports.ListUploadErrors(
            imports_pb2.ListUploadErrorsRequest(file_id=created.file_id), metadata=bob
        ),
        send(env, bob, created.file_id, b"timestamp,value\n"),
        announce(env, bob, format="csv", batch_id=batch.id),
        announce(env, bob, format="csv", device_id=sensor),
        new_batch(env, bob, sensor),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    # The owner's batch is untouched.
    still = await env.imports.GetBatch(imports_pb2.GetBatchRequest(batch_id=batch.id), metadata=ann)
    assert still.status == "ACTIVE"
    assert (
        await env.imports.GetUpload(
            imports_pb2.GetUploadRequest(file_id=created.file_id), metadata=ann
        )
    ).status == "PENDING"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"format": "pdf"}, ["format"]),
        ({}, ["format"]),
        ({"format": "csv", "batch_id": "nope", "device_id": "x"}, ["batch_id", "device_id"]),
        ({"format": "csv", "metric_name": "bad name"}, ["metric_name"]),
        ({"format": "csv", "checksum": "abc"}, ["checksum"]),
        ({"format": "csv", "filename": "x" * 256}, ["filename"]),
        ({"format": "csv", "expected_columns": [""]}, ["expected_columns"]),
    ],
)
async def test_a_bad_announcement_names_its_fields(
    env: Env, fields: dict[str, object], expected: list[str]
) -> None:
    ann = await user(env)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await announce(env, ann, **fields)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in violations_of(caught.value)] == expected


async def test_format_comes_from_the_filename_when_unset(env: Env) -> None:
    ann = await user(env)
    sensor = await device(env, ann)
    created = await announce(env, ann, filename="Readings.XLSX", device_id=sensor)
    assert created.fields["method"] == "PUT"
    assert created.fields["content-type"].endswith("spreadsheetml.sheet")
    file = await env.imports.GetUpload(
        imports_pb2.GetUploadRequest(file_id=created.file_id), metadata=ann
    )
    assert (file.format, file.filename) == ("xlsx", "Readings.XLSX")


async def test_content_is_taken_once_and_the_first_chunk_names_the_file(env: Env) -> None:
    ann = await user(env)
    sensor = await device(env, ann)
    created = await announce(env, ann, format="csv", device_id=sensor, metric_name="temp")
    content = f"timestamp,value\n{epoch(0)},5\n".encode()
    received = await send(env, ann, created.file_id, content)
    assert received.status in ("UPLOADED", "PROCESSING", "COMPLETED")
    assert received.HasField("uploaded_at") and received.file_size == len(content)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await send(env, ann, created.file_id, content)
    assert reason_of(caught.value) == "CONTENT_ALREADY_UPLOADED"

    async def nameless() -> AsyncIterator[imports_pb2.UploadContentChunk]:
        yield imports_pb2.UploadContentChunk(data=b"timestamp,value\n")

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.imports.UploadContent(nameless(), metadata=ann)
    assert [v.field for v in violations_of(caught.value)] == ["file_id"]
    assert (await finished(env, ann, created.file_id)).status == "COMPLETED"


@pytest.mark.parametrize(
    ("query", "field"),
    [({"page": -1}, "page"), ({"limit": 101}, "limit"), ({"severity": "LOUD"}, "severity")],
)
async def test_bad_error_log_queries_name_the_field(
    env: Env, query: dict[str, object], field: str
) -> None:
    ann = await user(env)
    batch = await new_batch(env, ann)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await errors(env, ann, batch.id, **query)
    assert [v.field for v in violations_of(caught.value)] == [field]


async def test_an_upload_cut_short_keeps_nothing_and_may_be_sent_again(env: Env) -> None:
    ann = await user(env)
    sensor = await device(env, ann)
    created = await announce(env, ann, format="csv", device_id=sensor, metric_name="temp")
    call = env.imports.UploadContent(metadata=ann)
    await call.write(imports_pb2.UploadContentChunk(file_id=created.file_id, data=b"timestamp,"))
    await call.write(imports_pb2.UploadContentChunk(data=b"value\n" + b"1" * 100_000))
    call.cancel()
    content = f"timestamp,value\n{epoch(0)},3\n".encode()
    deadline = time.monotonic() + 30
    while True:
        try:
            received = await send(env, ann, created.file_id, content)
            break
        except grpc.aio.AioRpcError as exc:
            # The cancelled attempt may still hold the file for a moment.
            if reason_of(exc) != "CONTENT_ALREADY_UPLOADED" or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
    assert received.file_size == len(content)
    assert received.checksum == hashlib.md5(content).hexdigest()
    assert (await finished(env, ann, created.file_id)).status == "COMPLETED"
    assert await stream_values(env, ann, sensor, "temp") == [3.0]
    objects = env.suite.settings.data_dir / "objects"
    stored = [p for p in objects.rglob("*") if p.is_file() and not p.name.startswith(".probe")]
    assert [p.read_bytes() for p in stored] == [content]


async def test_a_stream_ended_without_finish_write_stores_nothing_and_may_be_sent_again(
    env: Env,
) -> None:
    """A half-close without the marker is what a cut-off stream looks like before its
    cancellation arrives: it must not be taken for the whole file."""
    ann = await user(env)
    sensor = await device(env, ann)
    created = await announce(env, ann, format="csv", device_id=sensor, metric_name="temp")

    async def unfinished() -> AsyncIterator[imports_pb2.UploadContentChunk]:
        yield imports_pb2.UploadContentChunk(file_id=created.file_id, data=b"timestamp,value\n")
        yield imports_pb2.UploadContentChunk(data=f"{epoch(0)},1\n".encode())

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.imports.UploadContent(unfinished(), metadata=ann)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in violations_of(caught.value)] == ["finish_write"]

    async def continued() -> AsyncIterator[imports_pb2.UploadContentChunk]:
        yield imports_pb2.UploadContentChunk(file_id=created.file_id, data=b"timestamp,")
        yield imports_pb2.UploadContentChunk(data=b"value\n", finish_write=True)
        yield imports_pb2.UploadContentChunk(data=f"{epoch(0)},1\n".encode())

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.imports.UploadContent(continued(), metadata=ann)
    assert [v.field for v in violations_of(caught.value)] == ["finish_write"]
    pending = await env.imports.GetUpload(
        imports_pb2.GetUploadRequest(file_id=created.file_id), metadata=ann
    )
    assert pending.status == "PENDING" and pending.file_size == 0

    content = f"timestamp,value\n{epoch(0)},7\n".encode()
    received = await send(env, ann, created.file_id, content)
    assert received.file_size == len(content)
    assert (await finished(env, ann, created.file_id)).status == "COMPLETED"
    assert await stream_values(env, ann, sensor, "temp") == [7.0]


async def test_an_import_cut_short_by_a_restart_is_finished_at_the_next_start(env: Env) -> None:
    ann = await user(env)
    sensor = await device(env, ann)
    batch = await new_batch(env, ann, sensor)
    content = f"timestamp,value\n{epoch(0)},1\n{epoch(1)},x\n{epoch(2)},3\n".encode()
    file = await upload(env, ann, content, format="csv", batch_id=batch.id, metric_name="temp")
    assert file.status == "COMPLETED"
    # As if telemetry had died in the middle of the import.
    await env.backend.sql(
        "telemetry",
        "UPDATE uploaded_files SET status = 'PROCESSING', rows_imported = 1 WHERE id = ?",
        (file.id,),
    )
    await restart_telemetry(env)
    again = await finished(env, ann, file.id)
    assert again.status == "COMPLETED"
    assert (again.progress.rows_imported, again.progress.rows_duplicate) == (2, 2)
    assert "2 were already stored" in again.message
    log = await errors(env, ann, batch.id)
    assert [(e.metadata.row, e.metadata.column) for e in log.content] == [(3, "value")]
    assert await stream_values(env, ann, sensor, "temp") == [1.0, 3.0]
    assert (
        await env.imports.GetBatch(imports_pb2.GetBatchRequest(batch_id=batch.id), metadata=ann)
    ).error_count == 1
