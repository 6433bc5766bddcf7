"""gRPC failures -> the failure envelope, statuses and headers."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import grpc
import httpx
import pytest
from gw_support import Fakes, Probe, abort_with, gateway_methods, rich_status, running_gateway

from gateway.app import build_app
from gateway.serve import start_gateway, stop_gateway
from iotkit.config import Settings
from tests.support import free_port

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")


def refusing(violations: list[tuple[str, str]], **details: str) -> Any:
    """A scripted behaviour answering VALIDATION_FAILED with ``violations``."""

    async def refuse(request: Any, context: Any) -> Any:
        status = rich_status(
            grpc.StatusCode.INVALID_ARGUMENT,
            "Validation failed",
            reason="VALIDATION_FAILED",
            metadata=details,
            violations=violations,
        )
        await abort_with(context, status)

    return refuse


async def test_field_violations_and_error_info_fill_the_envelope(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    refuse = refusing(
        [
            ("email", "Invalid email format"),
            ("password", "Password must be at least 8 characters"),
        ],
        hint="see docs",
    )
    fakes.recorder.script("Register", refuse)
    response = await client.post("/v1/auth/register", json={"email": "nope", "password": "x"})
    assert response.status_code == 400
    body = response.json()
    assert body["http_status_code"] == 400
    assert body["success"] is False
    assert body["message"] == "Validation failed"
    assert body["data"] == {
        "errors": [
            {"field": "email", "message": "Invalid email format"},
            {"field": "password", "message": "Password must be at least 8 characters"},
        ]
    }
    error = body["error"]
    assert error["error_code"] == "VALIDATION_FAILED"
    assert error["status"] == 400
    assert error["error"] == "Bad Request"
    assert error["path"] == "/v1/auth/register"
    assert TIMESTAMP.match(error["timestamp"])
    assert error["details"] == {"hint": "see docs"}


@pytest.mark.parametrize(
    ("code", "http_status", "phrase"),
    [
        (grpc.StatusCode.NOT_FOUND, 404, "Not Found"),
        (grpc.StatusCode.ALREADY_EXISTS, 409, "Conflict"),
        (grpc.StatusCode.PERMISSION_DENIED, 403, "Forbidden"),
        (grpc.StatusCode.FAILED_PRECONDITION, 400, "Bad Request"),
        (grpc.StatusCode.ABORTED, 409, "Conflict"),
        (grpc.StatusCode.OUT_OF_RANGE, 400, "Bad Request"),
        (grpc.StatusCode.UNIMPLEMENTED, 501, "Not Implemented"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504, "Gateway Timeout"),
        (grpc.StatusCode.CANCELLED, 499, "Client Closed Request"),
        (grpc.StatusCode.UNAVAILABLE, 503, "Service Unavailable"),
    ],
)
async def test_grpc_codes_map_to_http_statuses(
    client: httpx.AsyncClient,
    fakes: Fakes,
    code: grpc.StatusCode,
    http_status: int,
    phrase: str,
) -> None:
    async def fail(request: Any, context: Any) -> Any:
        await abort_with(context, rich_status(code, "It went wrong"))

    fakes.recorder.script("GetMe", fail)
    response = await client.get("/v1/auth/me")
    assert response.status_code == http_status
    body = response.json()
    assert body["message"] == "It went wrong"
    # Without ErrorInfo the error code is the gRPC code's name.
    assert body["error"]["error_code"] == code.name
    assert body["error"]["error"] == phrase
    assert body["data"]["errors"] == []


async def test_unauthenticated_is_401_with_a_bearer_challenge(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    async def deny(request: Any, context: Any) -> Any:
        status = rich_status(
            grpc.StatusCode.UNAUTHENTICATED, "Authentication required", reason="UNAUTHENTICATED"
        )
        await abort_with(context, status)

    fakes.recorder.script("GetMe", deny)
    response = await client.get("/v1/auth/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert body["error"]["error_code"] == "UNAUTHENTICATED"
    assert body["error"]["error"] == "Unauthorized"


async def test_retry_info_becomes_retry_after_rounded_up(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    async def limit(request: Any, context: Any) -> Any:
        status = rich_status(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "Too many login attempts",
            reason="RATE_LIMITED",
            retry_seconds=12.2,
        )
        await abort_with(context, status)

    fakes.recorder.script("Login", limit)
    response = await client.post("/v1/auth/login", json={"email": "a@b.c", "password": "x"})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "13"
    assert response.json()["error"]["error_code"] == "RATE_LIMITED"


async def test_plain_statuses_from_unhandled_exceptions_are_not_shown(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    async def crash(request: Any, context: Any) -> Any:
        raise RuntimeError("db password is hunter2")

    fakes.recorder.script("GetMe", crash)
    response = await client.get("/v1/auth/me")
    assert response.status_code == 500
    body = response.json()
    assert body["error"]["error_code"] == "UNKNOWN"
    assert body["message"] == "Internal server error"
    assert "hunter2" not in response.text


async def test_a_plain_status_message_is_passed_through(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    async def missing(request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.NOT_FOUND, "No such thing")

    fakes.recorder.script("GetThing", missing)
    response = await client.get("/v1/things/x")
    assert response.status_code == 404
    body = response.json()
    assert body["message"] == "No such thing"
    assert body["error"]["error_code"] == "NOT_FOUND"


async def test_a_slow_service_is_a_504_after_the_deadline(fakes: Fakes, probe: Probe) -> None:
    async def slow(request: Any, context: Any) -> Any:
        await asyncio.sleep(5)

    fakes.recorder.script("GetMe", slow)
    settings = Settings(addresses={"auth": fakes.address, "devices": fakes.address})
    app = build_app(settings, methods=gateway_methods(probe), deadline=0.2)
    server, port, task = await start_gateway(settings, "127.0.0.1", 0, app=app)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            response = await http.get("/v1/auth/me")
    finally:
        await stop_gateway(server, task)
    assert response.status_code == 504
    body = response.json()
    assert body["error"]["error_code"] == "DEADLINE_EXCEEDED"
    assert body["message"] == "The auth service did not answer in time"


async def test_an_unreachable_service_is_503_naming_it(probe: Probe) -> None:
    down = f"127.0.0.1:{free_port()}"
    settings = Settings(addresses={"auth": down, "devices": down})
    async with (
        running_gateway(settings, gateway_methods(probe)) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10) as http,
    ):
        response = await http.post("/v1/auth/login", json={"email": "a@b.c", "password": "x"})
        status = await http.get("/v1/system/status")
        things = await http.get("/v1/things/x")
    assert response.status_code == 503
    body = response.json()
    assert body["error"]["error_code"] == "SERVICE_UNAVAILABLE"
    assert body["message"] == "The auth service is unavailable"
    assert body["error"]["error"] == "Service Unavailable"
    assert status.status_code == 503
    assert things.json()["message"] == "The devices service is unavailable"


async def test_an_unexpected_gateway_failure_is_a_generic_500_and_is_logged(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("internal detail 0xdeadbeef")

    monkeypatch.setattr("gateway.proxy.to_json", explode)
    with caplog.at_level(logging.ERROR, logger="gateway.middleware"):
        response = await client.get("/v1/system/status")
    assert response.status_code == 500
    body = response.json()
    assert body["error"]["error_code"] == "INTERNAL"
    assert body["message"] == "Internal server error"
    assert "deadbeef" not in response.text
    assert "Traceback" not in response.text
    assert response.headers["x-request-id"]
    assert any("deadbeef" in (record.exc_text or "") for record in caplog.records)


async def test_a_violation_inside_free_form_json_names_its_field(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    # Services name fields by their proto path, which inside a Struct runs through
    # protobuf's own fields (fields[...].struct_value...): the envelope names the Struct.
    refuse = refusing(
        [
            ("thing.extra.fields[a].struct_value.fields", "keys must not contain NUL"),
            ("thing.extra.fields", "keys must not contain NUL"),
            ("thing.extra.fields[b].list_value.values[2].string_value", "too long"),
            ("thing.location.label", "must not contain NUL"),
            ("thing.extra", "is too large"),
        ]
    )
    fakes.recorder.script("UpdateThing", refuse)
    response = await client.patch("/v1/things/x", json={"extra": {"a": {"b\u0000": 1}}})
    assert response.status_code == 400
    assert response.json()["data"]["errors"] == [
        {"field": "thing.extra", "message": "Keys must not contain NUL (at thing.extra.a)"},
        {"field": "thing.extra", "message": "Keys must not contain NUL"},
        {"field": "thing.extra", "message": "Too long (at thing.extra.b[2])"},
        {"field": "thing.location.label", "message": "must not contain NUL"},
        {"field": "thing.extra", "message": "is too large"},
    ]


async def test_grpc_s_own_resource_exhausted_is_not_shown(
    client: httpx.AsyncClient, fakes: Fakes, caplog: pytest.LogCaptureFixture
) -> None:
    # A plain RESOURCE_EXHAUSTED is a limit of gRPC's transport, worded for developers; the
    # services' rate limits are rich statuses (test_retry_info_becomes_retry_after_rounded_up).
    async def refuse(request: Any, context: Any) -> Any:
        await context.abort(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "received metadata size exceeds hard limit (value length 17000 vs. 16384)",
        )

    fakes.recorder.script("GetMe", refuse)
    with caplog.at_level(logging.WARNING, logger="gateway.errors"):
        response = await client.get("/v1/auth/me")
    assert response.status_code == 429
    body = response.json()
    assert body["message"] == "The auth service could not take this request"
    assert body["error"]["error_code"] == "RESOURCE_EXHAUSTED"
    assert "metadata" not in response.text and "16384" not in response.text
    assert any("16384" in record.getMessage() for record in caplog.records)
