"""File import through the gateway: raw uploads streamed as messages, and batches over real HTTP.

The first part checks the generic mechanism with a test-only proto whose
client-streaming RPC takes a ``bytes`` body; the second drives the real
telemetry import on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import io
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

import google.api
import grpc
import httpx
import pytest
from grpc_tools import protoc
from gw_support import REPO_PROTOS, abort_with, rich_status
from openpyxl import Workbook

from gateway.app import build_app
from gateway.discovery import RpcMethod, discover
from gateway.openapi import build_openapi
from gateway.serve import start_gateway, stop_gateway
from iotkit.config import Settings
from tests.conftest import Backend, start_suite
from tests.support import rest_user

MIB = 1024 * 1024
UPLOAD_LIMIT = 3 * MIB // 2

UPLOAD_PROTO = """
syntax = "proto3";

// A test-only API with raw-upload bindings.
package gwupload.v1;

import "google/api/annotations.proto";
import "iot/common/v1/options.proto";

// Stores blobs.
service BlobService {
  // A raw upload: the body is streamed as chunks.
  rpc PutBlob(stream Chunk) returns (Summary) {
    option (google.api.http) = {put: "/v1/blobs/{name}" body: "data"};
    option (iot.common.v1.rules) = {
      public: true success_status: 201 success_message: "Stored" finish_field: "finish"
    };
  }
  // A JSON body cannot be cut into messages: not exposed.
  rpc PutJson(stream Chunk) returns (Summary) {
    option (google.api.http) = {post: "/v1/blobs:json" body: "*"};
  }
  // A text body is not raw bytes: not exposed.
  rpc PutLabel(stream Chunk) returns (Summary) {
    option (google.api.http) = {post: "/v1/blobs/{name}:label" body: "label"};
  }
  // Bidirectional: not exposed.
  rpc Echo(stream Chunk) returns (stream Chunk) {
    option (google.api.http) = {put: "/v1/blobs/{name}:echo" body: "data"};
  }
}

// A piece of a blob.
message Chunk {
  // The blob's name.
  string name = 1;
  // The next bytes.
  bytes data = 2;
  // A label.
  string label = 3;
  // How many copies to keep.
  int32 copies = 4;
  // The body is whole (set by the gateway).
  bool finish = 5;
}

// What the service received.
message Summary {
  // The name in the first chunk.
  string name = 1;
  // Bytes received.
  uint64 size = 2;
  // Messages received.
  uint32 messages = 3;
  // The largest data field of one message.
  uint32 largest = 4;
  // MD5 of the bytes.
  string md5 = 5;
  // Copies asked in the first chunk.
  int32 copies = 6;
  // Names given in later chunks.
  repeated string later_names = 7;
  // Whether the last message said the body was whole.
  bool finished = 8;
}
"""


@dataclass
class Blobs:
    """The compiled test proto and what its fake servicer saw."""

    pb2: ModuleType
    grpc: ModuleType
    cut_off: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when a call ended before its body was whole: cancelled, or with no finish marker."""
    completed: list[str] = field(default_factory=list)


@pytest.fixture(scope="session")
def blob_modules(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ModuleType, ModuleType]]:
    """Compile the upload proto into a temporary package and import it."""
    out = tmp_path_factory.mktemp("gwupload")
    source = out / "src" / "gwupload" / "v1"
    source.mkdir(parents=True)
    (source / "upload.proto").write_text(UPLOAD_PROTO)
    well_known = Path(str(resources.files("grpc_tools") / "_proto"))
    googleapis = Path(google.api.__path__[0]).parent.parent
    args = ["protoc", f"-I{out / 'src'}", f"-I{REPO_PROTOS}", f"-I{well_known}", f"-I{googleapis}"]
    args += [f"--python_out={out}", f"--grpc_python_out={out}", "gwupload/v1/upload.proto"]
    assert protoc.main(args) == 0, "the upload proto must compile"
    for directory in (out / "gwupload", out / "gwupload" / "v1"):
        (directory / "__init__.py").touch()
    sys.path.insert(0, str(out))
    try:
        yield (
            importlib.import_module("gwupload.v1.upload_pb2"),
            importlib.import_module("gwupload.v1.upload_pb2_grpc"),
        )
    finally:
        sys.path.remove(str(out))


def blob_methods(pb2: ModuleType) -> list[RpcMethod]:
    return discover([pb2.DESCRIPTOR], upstream=lambda _: "devices")


@pytest.fixture
async def blobs(blob_modules: tuple[ModuleType, ModuleType]) -> AsyncIterator[tuple[Blobs, str]]:
    """A gRPC server with the fake BlobService; yields it and its address."""
    pb2, pb2_grpc = blob_modules
    state = Blobs(pb2, pb2_grpc)

    class FakeBlobs(pb2_grpc.BlobServiceServicer):  # type: ignore[name-defined,misc]
        async def PutBlob(self, request_iterator: Any, context: Any) -> Any:
            summary = pb2.Summary()
            digest = hashlib.md5()
            try:
                async for chunk in request_iterator:
                    summary.messages += 1
                    if summary.messages == 1:
                        summary.name, summary.copies = chunk.name, chunk.copies
                        if chunk.name == "refused":
                            await abort_with(
                                context, rich_status(grpc.StatusCode.NOT_FOUND, "No such blob")
                            )
                    elif chunk.name:
                        summary.later_names.append(chunk.name)
                    summary.size += len(chunk.data)
                    summary.largest = max(summary.largest, len(chunk.data))
                    summary.finished = chunk.finish
                    digest.update(chunk.data)
            except asyncio.CancelledError:
                state.cut_off.set()
                raise
            # As a careful service does: a cancelled stream ends like a finished one, and
            # its cancellation may land any time later; only the marker says it is whole.
            if not summary.finished:
                state.cut_off.set()
                await abort_with(context, rich_status(grpc.StatusCode.INVALID_ARGUMENT, "Cut off"))
            state.completed.append(summary.name)
            summary.md5 = digest.hexdigest()
            return summary

    server = grpc.aio.server()
    pb2_grpc.add_BlobServiceServicer_to_server(FakeBlobs(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield state, f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=None)


@pytest.fixture
async def blob_client(blobs: tuple[Blobs, str]) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway serving only the blob routes, with a 5 MiB upload limit."""
    state, address = blobs
    settings = Settings(addresses={"devices": address})
    app = build_app(settings, methods=blob_methods(state.pb2), max_upload_bytes=5 * MIB)
    server, port, task = await start_gateway(settings, "127.0.0.1", 0, app=app)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        yield http
    await stop_gateway(server, task)


def test_only_client_streaming_rpcs_with_a_bytes_body_are_exposed(
    blob_modules: tuple[ModuleType, ModuleType],
) -> None:
    methods = blob_methods(blob_modules[0])
    assert [m.descriptor.name for m in methods] == ["PutBlob"]
    assert methods[0].client_streaming


async def test_the_body_arrives_whole_in_chunks_of_at_most_a_mebibyte(
    blob_client: httpx.AsyncClient,
) -> None:
    body = bytes(range(256)) * (3 * 4096 + 100)  # 3 MiB and a bit
    answer = await blob_client.put(
        "/v1/blobs/report.csv",
        params={"copies": "2"},
        content=body,
        headers={"content-type": "text/csv"},
    )
    assert answer.status_code == 201, answer.text
    envelope = answer.json()
    assert envelope["message"] == "Stored"
    summary = envelope["data"]
    assert summary["md5"] == hashlib.md5(body).hexdigest()
    assert summary["size"] == str(len(body))
    assert summary["name"] == "report.csv" and summary["copies"] == 2
    assert summary["later_names"] == []  # path and query go on the first message only
    # Four pieces of the body, then the marker that it is whole.
    assert summary["largest"] == MIB and summary["messages"] == 5 and summary["finished"]


async def test_a_streamed_body_without_a_length_is_relayed(blob_client: httpx.AsyncClient) -> None:
    async def parts() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 300_000

    answer = await blob_client.put("/v1/blobs/live", content=parts())
    assert answer.status_code == 201
    summary = answer.json()["data"]
    assert summary["size"] == "3000000" and summary["largest"] == MIB and summary["finished"]


async def test_an_empty_body_is_the_path_and_the_finish_marker(
    blob_client: httpx.AsyncClient,
) -> None:
    answer = await blob_client.put("/v1/blobs/empty")
    assert answer.status_code == 201
    summary = answer.json()["data"]
    assert (summary["name"], summary["size"], summary["messages"]) == ("empty", "0", 2)
    assert summary["finished"]


async def test_an_early_refusal_is_answered_as_itself(blob_client: httpx.AsyncClient) -> None:
    answer = await blob_client.put("/v1/blobs/refused", content=b"y" * (3 * MIB))
    assert answer.status_code == 404, answer.text
    assert answer.json()["message"] == "No such blob"


async def test_a_body_over_the_limit_is_413_and_the_call_is_cancelled(
    blob_client: httpx.AsyncClient, blobs: tuple[Blobs, str]
) -> None:
    declared = await blob_client.put("/v1/blobs/big", content=b"z" * (5 * MIB + 1))
    assert declared.status_code == 413
    assert declared.json()["error"]["error_code"] == "PAYLOAD_TOO_LARGE"
    assert declared.json()["message"] == "Request body exceeds 5 MiB"

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(12):
            yield b"z" * (MIB // 2)

    streamed = await blob_client.put("/v1/blobs/big", content=endless())
    assert streamed.status_code == 413
    # The service had started receiving; it must see the call end, not a short body.
    await asyncio.wait_for(blobs[0].cut_off.wait(), 10)
    assert blobs[0].completed == []


async def test_the_default_upload_limit_is_100_mib(blobs: tuple[Blobs, str]) -> None:
    """The gateway as built for production (no limit given) refuses a body declared one
    byte over 100 MiB before reading it: the test sends the headers only."""
    state, address = blobs
    settings = Settings(addresses={"devices": address})
    app = build_app(settings, methods=blob_methods(state.pb2))
    server, port, task = await start_gateway(settings, "127.0.0.1", 0, app=app)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"PUT /v1/blobs/big HTTP/1.1\r\nHost: gateway\r\n"
            + f"Content-Length: {100 * MIB + 1}\r\n\r\n".encode()
        )
        await writer.drain()
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        length = next(
            int(line.split(":", 1)[1])
            for line in head.split("\r\n")
            if line.lower().startswith("content-length:")
        )
        body = json.loads(await reader.readexactly(length))
        writer.close()
    finally:
        await stop_gateway(server, task)
    assert head.startswith("HTTP/1.1 413")
    assert body["message"] == "Request body exceeds 100 MiB"
    assert state.completed == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"data": "x"}, "data"),
        ({"nope": "1"}, "nope"),
        ({"copies": "x"}, "copies"),
        ({"finish": "true"}, "finish"),
    ],
)
async def test_bad_query_parameters_are_400_before_the_body(
    blob_client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    answer = await blob_client.put("/v1/blobs/a", params=params, content=b"abc")
    assert answer.status_code == 400
    assert [e["field"] for e in answer.json()["data"]["errors"]] == [field]


def test_openapi_documents_a_raw_body(blob_modules: tuple[ModuleType, ModuleType]) -> None:
    app = build_app(Settings(), methods=blob_methods(blob_modules[0]))
    document = build_openapi(app.state.route_table.routes)
    operation = document["paths"]["/v1/blobs/{name}"]["put"]
    content = operation["requestBody"]["content"]
    assert content["application/octet-stream"]["schema"] == {"type": "string", "format": "binary"}
    assert [p["name"] for p in operation["parameters"]] == ["name", "label", "copies"]


# The real import through real services


@pytest.fixture
async def client(backend: Backend) -> AsyncIterator[httpx.AsyncClient]:
    suite = await start_suite(backend, ("auth", "devices", "telemetry"), max_active_batches=2)
    # A small upload limit so that a test can pass it cheaply (yet above one message).
    app = build_app(suite.settings, max_upload_bytes=UPLOAD_LIMIT)
    server, port, task = await start_gateway(suite.settings, "127.0.0.1", 0, app=app)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            yield http
    finally:
        await stop_gateway(server, task)
        await suite.aclose()


async def new_device(client: httpx.AsyncClient, who: dict[str, str]) -> str:
    answer = await client.post(
        "/v1/devices", headers=who, json={"name": "Kiln", "type": "temperature"}
    )
    return str(answer.json()["data"]["device_id"])


def now_minus(seconds: int) -> int:
    return int(time.time()) - 86_400 + seconds


async def put_file(
    client: httpx.AsyncClient, who: dict[str, str], content: bytes, **fields: object
) -> dict[str, Any]:
    created = await client.post("/v1/uploads", headers=who, json=fields)
    assert created.status_code == 201, created.text
    announced = created.json()["data"]
    assert announced["status"] == "PENDING" and announced["fields"]["method"] == "PUT"
    sent = await client.put(
        announced["upload_url"],
        headers={**who, "content-type": announced["fields"]["content-type"]},
        content=content,
    )
    assert sent.status_code == 200, sent.text
    assert sent.json()["message"] == "File received; import started"
    return await settled(client, who, announced["file_id"])


async def settled(client: httpx.AsyncClient, who: dict[str, str], file_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        file = (await client.get(f"/v1/uploads/{file_id}", headers=who)).json()["data"]
        if file["status"] in ("COMPLETED", "FAILED"):
            return dict(file)
        await asyncio.sleep(0.05)
    raise AssertionError("the import never finished")


async def test_a_batch_of_csv_json_and_xlsx_files(client: httpx.AsyncClient) -> None:
    ann = await rest_user(client)
    device_id = await new_device(client, ann)
    started = await client.post("/v1/batches", headers=ann, json={"device_id": device_id})
    assert started.status_code == 201 and started.json()["message"] == "Batch started"
    batch = started.json()["data"]
    assert batch["status"] == "ACTIVE" and batch["id"] == batch["batch_id"]
    assert batch["uploaded_files_count"] == 0 and batch["total_size"] == "0"
    assert batch["site_id"] == "" and batch["has_errors"] is False
    assert "completed_at" not in batch and batch["s3_path"] == f"batches/{batch['id']}/"

    csv_file = await put_file(
        client,
        ann,
        f"timestamp,value\n{now_minus(0)},1.5\n{now_minus(60)},warm\n".encode(),
        format="csv",
        batch_id=batch["id"],
        metric_name="temp",
    )
    json_content = json.dumps(
        [{"timestamp": now_minus(120) * 1000, "value": 2.5}, {"timestamp": "later", "value": 1}]
    ).encode()
    json_file = await put_file(
        client, ann, json_content, format="json", batch_id=batch["id"], metric_name="temp"
    )
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["timestamp", "value", "metric_name"])
    sheet.append([now_minus(180), 3.5, "temp"])
    sheet.append([now_minus(240), None, "temp"])
    raw = io.BytesIO()
    book.save(raw)
    xlsx_file = await put_file(
        client, ann, raw.getvalue(), filename="sheet.xlsx", batch_id=batch["id"], metric_name="temp"
    )
    for file in (csv_file, json_file, xlsx_file):
        assert file["status"] == "COMPLETED", file["message"]
        assert file["progress"] == {
            "rows_total": 2,
            "rows_imported": 1,
            "rows_rejected": 1,
            "rows_duplicate": 0,
        }
        assert isinstance(file["file_size"], int) and len(file["checksum"]) == 32

    errors = await client.get(
        f"/v1/batches/{batch['id']}/errors", headers=ann, params={"limit": 2, "page": 2}
    )
    assert errors.status_code == 200
    page = errors.json()["data"]
    # Paginated as every list: the `limit` asked for is answered as `limit`, not `size`.
    assert sorted(page) == ["content", "pagination"]
    assert page["pagination"] == {"page": 2, "limit": 2, "total": 3, "total_pages": 2}
    (entry,) = page["content"]
    assert entry["severity"] == "ERROR" and entry["source"] == "validation"
    assert entry["metadata"]["row"] == 3 and entry["metadata"]["column"] == "value"
    assert entry["metadata"]["filename"] == "sheet.xlsx"
    assert entry["batch_id"] == batch["id"] and entry["occurred_at"].endswith("Z")

    streams = (await client.get(f"/v1/devices/{device_id}/streams", headers=ann)).json()["data"]
    (stream,) = streams["streams"]
    data = (await client.get(f"/v1/streams/{stream['stream_id']}/data", headers=ann)).json()["data"]
    assert [p["value"] for p in data["data"]] == [1.5, 2.5, 3.5]

    done = await client.post(f"/v1/batches/{batch['id']}/complete", headers=ann)
    assert done.status_code == 200 and done.json()["message"] == "Batch completed"
    closed = done.json()["data"]
    assert closed["status"] == "COMPLETED" and closed["uploaded_files_count"] == 3
    assert closed["has_errors"] is True and "completed_at" in closed
    files = (await client.get(f"/v1/batches/{batch['id']}/files", headers=ann)).json()["data"]
    assert [f["id"] for f in files["files"]] == [csv_file["id"], json_file["id"], xlsx_file["id"]]


async def test_bad_input_is_a_4xx_naming_the_field(client: httpx.AsyncClient) -> None:
    ann, bob = await rest_user(client), await rest_user(client)
    device_id = await new_device(client, ann)
    bad = await client.post("/v1/uploads", headers=ann, json={"format": "pdf", "checksum": "x"})
    assert bad.status_code == 400
    assert [e["field"] for e in bad.json()["data"]["errors"]] == ["format", "checksum"]
    wrong_type = await client.post("/v1/uploads", headers=ann, json={"expected_columns": "ts"})
    assert wrong_type.status_code == 400
    assert wrong_type.json()["data"]["errors"][0]["field"] == "expected_columns"
    assert (await client.get("/v1/batches/nope", headers=ann)).json()["data"]["errors"] == [
        {"field": "batch_id", "message": "batch_id must be a UUID"}
    ]
    assert (await client.post("/v1/uploads", json={"format": "csv"})).status_code == 401

    created = (
        await client.post(
            "/v1/uploads",
            headers=ann,
            json={"format": "csv", "device_id": device_id, "checksum": "0" * 32},
        )
    ).json()["data"]
    url = created["upload_url"]
    assert (await client.put(url, headers=bob, content=b"timestamp,value\n")).status_code == 404
    unknown = await client.put(f"/v1/uploads/{uuid.uuid4()}/content", headers=ann, content=b"a")
    assert (
        unknown.status_code == 404 and unknown.json()["error"]["error_code"] == "UPLOAD_NOT_FOUND"
    )

    mismatch = await client.put(url, headers=ann, content=b"timestamp,value\n1700000000,1\n")
    assert mismatch.status_code == 400
    assert mismatch.json()["data"]["errors"][0]["field"] == "checksum"
    again = await client.put(url, headers=ann, content=b"timestamp,value\n")
    assert again.status_code == 400
    assert again.json()["error"]["error_code"] == "CONTENT_ALREADY_UPLOADED"
    failed = (await client.get(f"/v1/uploads/{created['file_id']}", headers=ann)).json()["data"]
    assert failed["status"] == "FAILED"
    log = (await client.get(f"/v1/uploads/{created['file_id']}/errors", headers=ann)).json()
    assert [e["source"] for e in log["data"]["content"]] == ["checksum"]

    first = (await client.post("/v1/batches", headers=ann, json={})).json()["data"]
    await client.post("/v1/batches", headers=ann, json={})
    third = await client.post("/v1/batches", headers=ann, json={})
    assert third.status_code == 400
    assert third.json()["error"]["error_code"] == "TOO_MANY_ACTIVE_BATCHES"
    assert third.json()["error"]["details"] == {"max_active_batches": "2"}
    cancelled = await client.post(f"/v1/batches/{first['id']}/cancel", headers=ann)
    assert cancelled.json()["data"]["status"] == "CANCELLED"
    twice = await client.post(f"/v1/batches/{first['id']}/complete", headers=ann)
    assert twice.status_code == 400 and twice.json()["error"]["error_code"] == "BATCH_NOT_ACTIVE"
    assert (await client.get(f"/v1/batches/{first['id']}", headers=bob)).status_code == 404
    listed = await client.get("/v1/batches", headers=ann, params={"status": "nope"})
    assert listed.status_code == 400 and listed.json()["data"]["errors"][0]["field"] == "status"


async def test_an_upload_over_the_limit_is_413_and_may_be_sent_again(
    client: httpx.AsyncClient,
) -> None:
    ann = await rest_user(client)
    device_id = await new_device(client, ann)
    created = (
        await client.post(
            "/v1/uploads",
            headers=ann,
            json={"format": "csv", "device_id": device_id, "metric_name": "temp"},
        )
    ).json()["data"]
    too_big = await client.put(
        created["upload_url"], headers=ann, content=b"1" * (UPLOAD_LIMIT + 1)
    )
    assert too_big.status_code == 413

    async def streamed() -> AsyncIterator[bytes]:
        # The first mebibyte reaches telemetry before the limit is passed.
        yield b"timestamp,value\n"
        for _ in range(40):
            yield b"1" * 50_000

    cut = await client.put(created["upload_url"], headers=ann, content=streamed())
    assert cut.status_code == 413
    # Nothing was kept of the refused attempts: the file waits for its content again
    # (once telemetry has seen the cancellation, which may trail the 413 a little).
    content = f"timestamp,value\n{now_minus(0)},7\n".encode()
    deadline = time.monotonic() + 30
    while True:
        sent = await client.put(created["upload_url"], headers=ann, content=content)
        busy = sent.status_code == 400 and sent.json()["error"]["error_code"] == (
            "CONTENT_ALREADY_UPLOADED"
        )
        if not busy or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert sent.status_code == 200, sent.text
    assert sent.json()["data"]["file_size"] == len(content)
    done = await settled(client, ann, created["file_id"])
    assert done["status"] == "COMPLETED" and done["progress"]["rows_imported"] == 1


async def test_the_import_routes_are_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    put = document["paths"]["/v1/uploads/{file_id}/content"]["put"]
    assert "application/octet-stream" in put["requestBody"]["content"]
    for path in ("/v1/batches", "/v1/batches/{batch_id}/errors", "/v1/uploads"):
        assert path in document["paths"]
