"""Helpers of the gateway tests: fake servicers, rich statuses, a gateway runner.

The fake AuthService, SystemService and ProbeService answer canned messages
(the probe echoes its request) unless a test scripts a method
(``recorder.script("Register", coroutine)``), and record the request and the
metadata of every call. The test-only ``gwprobe`` proto (compiled by the
``probe`` fixture) exercises path, query, body, verb and streaming bindings;
its service is routed to the "devices" address.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import httpx
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.descriptor import FileDescriptor
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from gateway.app import build_app
from gateway.discovery import RpcMethod, discover, proto_files
from gateway.serve import start_gateway, stop_gateway
from iot.auth.v1 import auth_pb2, auth_pb2_grpc
from iot.system.v1 import system_pb2, system_pb2_grpc
from iotkit.config import Settings

PROTO_DIR = Path(__file__).parent / "protos"
REPO_PROTOS = Path(__file__).resolve().parents[2] / "protos"

Behaviour = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


def rich_status(
    code: grpc.StatusCode,
    message: str,
    *,
    reason: str | None = None,
    metadata: dict[str, str] | None = None,
    violations: list[tuple[str, str]] | None = None,
    retry_seconds: float | None = None,
) -> grpc.Status:
    """A grpc.Status with google.rpc details, as the kit's error interceptor builds them."""
    details: list[any_pb2.Any] = []

    def pack(message: Any) -> None:
        packed = any_pb2.Any()
        packed.Pack(message)
        details.append(packed)

    if reason is not None:
        pack(error_details_pb2.ErrorInfo(reason=reason, domain="iotsuite", metadata=metadata or {}))
    if violations:
        pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                    for f, d in violations
                ]
            )
        )
    if retry_seconds is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(retry_seconds * 1e9))
        pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return rpc_status.to_status(
        status_pb2.Status(code=code.value[0], message=message, details=details)
    )


async def abort_with(context: grpc.aio.ServicerContext[Any, Any], status: grpc.Status) -> None:
    """Abort the RPC with a rich status."""
    await context.abort(status.code, status.details, status.trailing_metadata)


@dataclass
class Recorder:
    """What the fake servicers received, and per-method scripted behaviour."""

    calls: list[tuple[str, Any, dict[str, str]]] = field(default_factory=list)
    scripts: dict[str, Behaviour] = field(default_factory=dict)
    stream_cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    def script(self, method: str, behaviour: Behaviour) -> None:
        """Make ``method`` run ``behaviour(request, context)`` instead of its canned answer."""
        self.scripts[method] = behaviour

    async def handle(
        self, method: str, request: Any, context: grpc.aio.ServicerContext[Any, Any], default: Any
    ) -> Any:
        metadata = {key: value for key, value in context.invocation_metadata() or ()}
        self.calls.append((method, request, metadata))
        behaviour = self.scripts.get(method)
        if behaviour is not None:
            return await behaviour(request, context)
        return default

    def last(self, method: str) -> tuple[Any, dict[str, str]]:
        """The request and metadata of the last call to ``method``."""
        for name, request, metadata in reversed(self.calls):
            if name == method:
                return request, metadata
        raise AssertionError(f"{method} was not called")


def canned_user() -> auth_pb2.User:
    user = auth_pb2.User(uuid="u-1", email="ada@example.com", role="user", is_active=True)
    user.created_at.FromJsonString("2026-01-01T00:00:00Z")
    return user


class FakeAuth(auth_pb2_grpc.AuthServiceServicer):
    """Canned auth answers."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def Register(self, request: Any, context: Any) -> Any:
        default = auth_pb2.RegisterResponse(
            user=canned_user(), profile=auth_pb2.Profile(uuid="p-1", display_name="Ada")
        )
        return await self.recorder.handle("Register", request, context, default)

    async def Login(self, request: Any, context: Any) -> Any:
        default = auth_pb2.LoginResponse(
            user=canned_user(),
            access_token="access-1",
            refresh_token="refresh-1",
            expires_in=900,
            token_type="bearer",
        )
        return await self.recorder.handle("Login", request, context, default)

    async def GetMe(self, request: Any, context: Any) -> Any:
        default = auth_pb2.AuthMe(user=canned_user())
        return await self.recorder.handle("GetMe", request, context, default)

    async def GetJwks(self, request: Any, context: Any) -> Any:
        default = auth_pb2.Jwks(
            keys=[auth_pb2.Jwk(kty="OKP", crv="Ed25519", x="abc", kid="k1", use="sig", alg="EdDSA")]
        )
        return await self.recorder.handle("GetJwks", request, context, default)


class FakeSystem(system_pb2_grpc.SystemServiceServicer):
    """Canned system status."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def GetSystemStatus(self, request: Any, context: Any) -> Any:
        default = system_pb2.SystemStatus(status="healthy", version="0.1.0", uptime=1.5)
        return await self.recorder.handle("GetSystemStatus", request, context, default)


@dataclass(frozen=True)
class Probe:
    """The compiled test-only proto modules."""

    pb2: ModuleType
    grpc: ModuleType
    bad_file: FileDescriptor

    @property
    def file(self) -> FileDescriptor:
        return self.pb2.DESCRIPTOR  # type: ignore[no-any-return]


def make_probe_servicer(probe: Probe, recorder: Recorder) -> Any:
    """A ProbeService that echoes each request back (scriptable like the others)."""
    pb2 = probe.pb2

    class FakeProbe(probe.grpc.ProbeServiceServicer):  # type: ignore[name-defined,misc]
        async def GetThing(self, request: Any, context: Any) -> Any:
            return await recorder.handle("GetThing", request, context, request)

        async def UpdateThing(self, request: Any, context: Any) -> Any:
            return await recorder.handle("UpdateThing", request, context, request.thing)

        async def ImportThings(self, request: Any, context: Any) -> Any:
            default = pb2.ImportThingsResponse(imported=len(request.things), total_bytes=2**40)
            return await recorder.handle("ImportThings", request, context, default)

        async def ListSiteThings(self, request: Any, context: Any) -> Any:
            return await recorder.handle("ListSiteThings", request, context, request)

        async def GetFavourite(self, request: Any, context: Any) -> Any:
            return await recorder.handle(
                "GetFavourite", request, context, pb2.Thing(thing_id="fav")
            )

        async def DeleteThing(self, request: Any, context: Any) -> Any:
            return await recorder.handle("DeleteThing", request, context, request)

        async def GetLocation(self, request: Any, context: Any) -> Any:
            default = pb2.Thing(location=pb2.Location(latitude=1.5, label="sites/lab"))
            return await recorder.handle("GetLocation", request, context, default)

        async def Unlock(self, request: Any, context: Any) -> Any:
            return await recorder.handle("Unlock", request, context, pb2.Thing())

        async def WatchThings(self, request: Any, context: Any) -> Any:
            await recorder.handle("WatchThings", request, context, None)
            if request.limit < 0:
                # A live stream that only ends when the caller goes away; -1 says
                # one thing first, -2 stays quiet from the start.
                if request.limit == -1:
                    yield pb2.Thing(thing_id="live")
                try:
                    await asyncio.sleep(60)
                except asyncio.CancelledError:
                    recorder.stream_cancelled.set()
                    raise
            for index in range(request.limit):
                yield pb2.Thing(thing_id=f"t{index}", limit=index)
            if request.flag:
                status = rich_status(grpc.StatusCode.ABORTED, "Stream interrupted", reason="GONE")
                await abort_with(context, status)

    return FakeProbe()


@dataclass
class Fakes:
    """A real grpc.aio server hosting the fakes."""

    address: str
    recorder: Recorder


def gateway_methods(probe: Probe) -> list[RpcMethod]:
    """The real iot routes plus the probe's, the probe served by the "devices" address."""
    return discover(proto_files()) + discover([probe.file], upstream=lambda _: "devices")


@asynccontextmanager
async def running_gateway(settings: Settings, methods: list[RpcMethod]) -> AsyncIterator[str]:
    """Serve a gateway on 127.0.0.1:<free port>; yields its base URL."""
    app = build_app(settings, methods=methods)
    server, port, task = await start_gateway(settings, "127.0.0.1", 0, app=app)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await stop_gateway(server, task)


async def first_sse_event(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], ready: asyncio.Event
) -> dict[str, object]:
    """The first event of the Server-Sent Events stream at ``path``; ``ready`` is set once the
    stream is open (so the test sends what should appear only then)."""
    async with client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        ready.set()
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                return dict(json.loads(line[5:]))
    raise AssertionError("the stream ended without an event")
