"""The processes' event loop (iotkit.event_loop): uvloop unless turned off, gRPC aio on it."""

from __future__ import annotations

import asyncio

import pytest
import uvloop
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from gateway.serve import uvicorn_options
from iotkit import event_loop


async def _loop_type() -> type[asyncio.AbstractEventLoop]:
    return type(asyncio.get_running_loop())


def test_uvloop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(event_loop.LOOP_ENV, raising=False)
    assert event_loop.loop_name() == "uvloop"
    assert event_loop.run(_loop_type()) is uvloop.Loop
    assert uvicorn_options("127.0.0.1", 0)["loop"] == "uvloop"


def test_asyncio_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(event_loop.LOOP_ENV, " AsyncIO ")
    assert event_loop.loop_name() == "asyncio"
    assert event_loop.loop_factory() is None
    assert not issubclass(event_loop.run(_loop_type()), uvloop.Loop)
    assert uvicorn_options("127.0.0.1", 0)["loop"] == "asyncio"


def test_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(event_loop.LOOP_ENV, raising=False)

    def missing(name: str) -> object:
        raise ImportError(name)

    monkeypatch.setattr(event_loop.importlib, "import_module", missing)
    assert event_loop.loop_name() == "asyncio"
    assert event_loop.loop_factory() is None


async def _health_call() -> int:
    """A gRPC aio server and client on the running loop: one Check answered."""
    server = aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=10
            )
        return int(reply.status)
    finally:
        await server.stop(None)


def test_grpc_aio_serves_on_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(event_loop.LOOP_ENV, raising=False)
    assert event_loop.run(_health_call()) == health_pb2.HealthCheckResponse.SERVING
