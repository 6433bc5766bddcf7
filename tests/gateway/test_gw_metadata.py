"""What the gateway forwards to services as metadata, and the request id it echoes."""

from __future__ import annotations

import asyncio
import json
import logging
import re

import httpx
import pytest
from gw_support import Fakes
from starlette.types import Message, Receive, Scope, Send

from gateway.metadata import MAX_AUTHORIZATION_CHARS
from gateway.middleware import CLIENT_CLOSED, RequestContextMiddleware
from iotkit.logs import JsonFormatter


async def test_authorization_and_request_id_reach_the_service(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    response = await client.get(
        "/v1/auth/me",
        headers={"Authorization": "Bearer token-abc", "X-Request-Id": "req-123"},
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-123"
    _, metadata = fakes.recorder.last("GetMe")
    assert metadata["authorization"] == "Bearer token-abc"
    assert metadata["x-request-id"] == "req-123"


async def test_a_request_id_is_generated_when_missing_or_unsafe(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    response = await client.get("/v1/system/status")
    generated = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    _, metadata = fakes.recorder.last("GetSystemStatus")
    assert metadata["x-request-id"] == generated
    assert "authorization" not in metadata

    response = await client.get("/v1/system/status", headers={"X-Request-Id": "x" * 500})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


async def test_errors_carry_the_request_id_too(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/missing", headers={"X-Request-Id": "abc.def-1"})
    assert response.status_code == 404
    assert response.headers["x-request-id"] == "abc.def-1"


async def test_client_address_and_user_agent_are_forwarded(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    await client.get("/v1/system/status", headers={"User-Agent": "console/1.0"})
    _, metadata = fakes.recorder.last("GetSystemStatus")
    assert metadata["x-forwarded-for"] == "127.0.0.1"
    assert metadata["x-forwarded-user-agent"] == "console/1.0"

    await client.get("/v1/system/status", headers={"X-Forwarded-For": "203.0.113.7"})
    _, metadata = fakes.recorder.last("GetSystemStatus")
    # Appended, as a proxy does: the original client first, this hop's peer last.
    assert metadata["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"


async def test_the_access_log_has_one_json_line_per_request_without_secrets(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="gateway.access"):
        response = await client.post(
            "/v1/auth/login?debug=1",
            json={"email": "a@b.c", "password": "pw-secret-value"},
            headers={"Authorization": "Bearer tok-secret-value", "X-Request-Id": "log-1"},
        )
    records = [r for r in caplog.records if r.name == "gateway.access"]
    assert len(records) == 1
    line = JsonFormatter("gateway").format(records[0])
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["method"] == "POST"
    assert entry["path"] == "/v1/auth/login"
    assert entry["status"] == response.status_code
    assert entry["request_id"] == "log-1"
    assert isinstance(entry["duration_ms"], float)
    assert "secret-value" not in caplog.text
    assert "debug=1" not in caplog.text


async def test_a_secret_path_variable_is_logged_as_its_template(
    client: httpx.AsyncClient, fakes: Fakes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="gateway.access"):
        response = await client.post("/v1/locks/open-sesame-42:unlock")
    assert response.status_code == 200
    request, _ = fakes.recorder.last("Unlock")
    assert request.password == "open-sesame-42"
    records = [r for r in caplog.records if r.name == "gateway.access"]
    assert records[-1].__dict__["path"] == "/v1/locks/{password}:unlock"
    assert "open-sesame" not in caplog.text


async def test_a_request_its_client_gave_up_on_is_logged_499_not_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A browser that reloads while a file is on its way cancels the request: nothing failed
    # here, and a 500 in the log would send an operator looking for a fault.
    started = asyncio.Event()

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        started.set()
        await asyncio.sleep(60)

    app = RequestContextMiddleware(slow)
    scope = {"type": "http", "method": "GET", "path": "/static/vendor/uplot.js", "headers": []}

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent to a client that left")

    with caplog.at_level(logging.INFO, logger="gateway.access"):
        serving = asyncio.create_task(app(scope, receive, send))
        await started.wait()
        serving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await serving
    records = [r for r in caplog.records if r.name == "gateway.access"]
    assert [r.__dict__["status"] for r in records] == [CLIENT_CLOSED] == [499]


async def test_long_headers_are_forwarded_bounded_and_every_call_gets_through(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    # gRPC refuses metadata over 16 KiB, and past 8 KiB a growing share of calls at random
    # (RESOURCE_EXHAUSTED, which was a 429 in gRPC's words): what is forwarded stays under.
    # The fake servers keep gRPC's default limits.
    headers = {
        "User-Agent": "a" * 17_000,
        "X-Forwarded-For": ", ".join(f"198.51.100.{i % 250}" for i in range(1_500)),
        "Authorization": "Bearer " + "t" * (MAX_AUTHORIZATION_CHARS - 7),
    }
    for _ in range(20):
        response = await client.get("/v1/system/status", headers=headers)
        assert response.status_code == 200, response.text[:300]
    _, metadata = fakes.recorder.last("GetSystemStatus")
    assert metadata["x-forwarded-user-agent"] == "a" * 512
    forwarded = metadata["x-forwarded-for"]
    # The end of the chain, whole addresses, and this hop's peer last.
    assert len(forwarded) <= 1024 + len(", 127.0.0.1")
    assert forwarded.endswith(", 198.51.100.249, 127.0.0.1")
    address = re.compile(r"198\.51\.100\.\d+|127\.0\.0\.1")
    assert all(address.fullmatch(part) for part in forwarded.split(", "))
    assert metadata["authorization"] == headers["Authorization"]

    # One address too long to keep is left out: the peer alone is forwarded.
    await client.get("/v1/system/status", headers={"X-Forwarded-For": "9" * 5_000})
    _, metadata = fakes.recorder.last("GetSystemStatus")
    assert metadata["x-forwarded-for"] == "127.0.0.1"


async def test_an_authorization_longer_than_any_token_is_401_without_a_call(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    for size in (MAX_AUTHORIZATION_CHARS + 1, 17_000):
        response = await client.get(
            "/v1/system/status", headers={"Authorization": "Bearer " + "t" * size}
        )
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        body = response.json()
        assert body["error"]["error_code"] == "UNAUTHENTICATED"
        assert body["message"] == "Authorization header is too long"
    assert fakes.recorder.calls == []
