"""Clients that hold connections: a body that stops arriving, and too many open connections."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from gw_support import Fakes, Probe, gateway_methods

from gateway import serve
from gateway.app import build_app
from gateway.head_timeout import TimedHeadProtocol
from gateway.serve import KEEP_ALIVE_SECONDS, start_gateway, stop_gateway, uvicorn_options
from gateway.settings import DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_CONNECTIONS, GatewaySettings
from iotkit.config import ConfigError

BODY_TIMEOUT = 0.5


@asynccontextmanager
async def gateway(fakes: Fakes, probe: Probe, **own: float) -> AsyncIterator[tuple[int, object]]:
    """A gateway with its own settings ``own``; yields its port and uvicorn server."""
    settings = GatewaySettings(addresses={"auth": fakes.address, "devices": fakes.address}, **own)
    app = build_app(settings, methods=gateway_methods(probe))
    server, port, task = await start_gateway(settings, "127.0.0.1", 0, app=app)
    try:
        yield port, server
    finally:
        await stop_gateway(server, task)


async def read_all(reader: asyncio.StreamReader, limit: float = 10.0) -> bytes:
    """What the server sends until it closes the connection (within ``limit`` seconds)."""
    return await asyncio.wait_for(reader.read(), limit)


async def test_a_body_that_stops_arriving_is_408_and_the_connection_closes(
    fakes: Fakes, probe: Probe
) -> None:
    async with gateway(fakes, probe, gateway_body_timeout=BODY_TIMEOUT) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        writer.write(
            b"POST /v1/auth/login HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"email": "a@b.co", '
        )
        await writer.drain()
        answer = await read_all(reader)  # the server closes the connection after its answer
        waited = time.monotonic() - started
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), head
    assert b"connection: close" in head.lower()
    envelope = json.loads(body)
    assert envelope["error"]["error_code"] == "REQUEST_TIMEOUT"
    assert envelope["error"]["path"] == "/v1/auth/login"
    assert BODY_TIMEOUT <= waited < BODY_TIMEOUT + 5
    assert all(name != "Login" for name, _, _ in fakes.recorder.calls)


async def test_a_body_that_keeps_arriving_slowly_is_read_whole(fakes: Fakes, probe: Probe) -> None:
    # The bound is on a wait without progress, not on the whole body.
    body = b'{"email": "a@b.co", "password": "a long enough password"}'
    async with gateway(fakes, probe, gateway_body_timeout=BODY_TIMEOUT) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /v1/auth/login HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        for start in range(0, len(body), len(body) // 4 + 1):
            writer.write(body[start : start + len(body) // 4 + 1])
            await writer.drain()
            await asyncio.sleep(BODY_TIMEOUT * 0.6)
        answer = await read_all(reader)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    request, _ = fakes.recorder.last("Login")
    assert request.password == "a long enough password"


async def test_a_live_stream_outlasts_the_body_timeout(fakes: Fakes, probe: Probe) -> None:
    # Once the body is in (a GET has none), waiting for the client to leave is not timed.
    async with (
        gateway(fakes, probe, gateway_body_timeout=BODY_TIMEOUT) as (port, _),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http,
        http.stream("GET", "/v1/things:watch", params={"limit": -1}) as response,
    ):
        assert response.status_code == 200
        lines = response.aiter_lines()
        while not (await anext(lines)).startswith("data:"):
            pass
        await asyncio.sleep(BODY_TIMEOUT * 3)
        assert not fakes.recorder.stream_cancelled.is_set()


async def test_connections_past_the_limit_are_answered_503(fakes: Fakes, probe: Probe) -> None:
    async with gateway(fakes, probe, gateway_max_connections=3) as (port, server):
        config = server.config  # type: ignore[attr-defined]
        assert config.limit_concurrency == 3
        assert config.timeout_keep_alive == KEEP_ALIVE_SECONDS
        # Clients that never finish their headers hold connections...
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        for _, writer in idle:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n")
            await writer.drain()
        await asyncio.sleep(0.1)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            # ... and past the limit a new one is refused at once, not left to exhaust files,
            # with the envelope every API client reads (uvicorn's own is plain text).
            refused = await http.get("/v1/devices")
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "1"
            assert refused.headers["connection"] == "close"
            envelope = refused.json()
            assert envelope["error"]["error_code"] == "SERVICE_UNAVAILABLE"
            assert envelope["error"]["path"] == "/v1/devices"
            assert "try again" in envelope["message"]
            for _, writer in idle:
                writer.close()
            await asyncio.sleep(0.2)
            answered = await http.get("/healthz")
        assert answered.status_code == 200


def test_the_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = GatewaySettings.load({})
    assert defaults.gateway_body_timeout == DEFAULT_BODY_TIMEOUT == 30
    assert defaults.gateway_max_connections == DEFAULT_MAX_CONNECTIONS
    settings = GatewaySettings.load(
        {"IOT_GATEWAY_BODY_TIMEOUT": "2.5", "IOT_GATEWAY_MAX_CONNECTIONS": "70"}
    )
    assert settings.gateway_body_timeout == 2.5
    options = uvicorn_options("127.0.0.1", 0, max_connections=settings.gateway_max_connections)
    assert options["limit_concurrency"] == 70
    assert options["timeout_keep_alive"] == KEEP_ALIVE_SECONDS
    assert uvicorn_options("127.0.0.1", 0)["limit_concurrency"] == DEFAULT_MAX_CONNECTIONS
    for bad in ({"IOT_GATEWAY_BODY_TIMEOUT": "0"}, {"IOT_GATEWAY_MAX_CONNECTIONS": "0"}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            GatewaySettings.load(bad)
    # Never more connections than the process may open files, less its own.
    monkeypatch.setattr(serve.resource, "getrlimit", lambda _: (1024, 4096))
    assert uvicorn_options("127.0.0.1", 0)["limit_concurrency"] == 1024 - serve.RESERVED_FILES


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET /v1/system/status HTTP/1.1\r\nHost: gw\r\n"],
    ids=["nothing", "half a head"],
)
async def test_a_connection_stalled_before_its_headers_end_is_closed(
    fakes: Fakes, probe: Probe, monkeypatch: pytest.MonkeyPatch, sent: bytes
) -> None:
    # Slowloris: uvicorn times idle keep-alive connections only, and a client that sent
    # nothing or half a request line and headers held its connection for ever.
    monkeypatch.setattr(TimedHeadProtocol, "head_timeout", 0.5)
    async with gateway(fakes, probe) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(sent)
        await writer.drain()
        assert await read_all(reader, 5.0) == b""  # closed without an answer
        writer.close()
        # A whole request is answered as before, on a new connection.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).status_code == 200
