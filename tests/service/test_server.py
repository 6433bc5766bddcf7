"""The server builder: health on start, NOT_SERVING and draining on stop, errors never leak."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from grpc_health.v1 import health_pb2, health_pb2_grpc

from iot.system.v1 import system_pb2, system_pb2_grpc
from iotkit import revocation
from iotkit.errors import reason_of
from iotkit.revocation import Revocation, RevocationFollower
from iotkit.server import build_server
from iotkit.tokens import KeySet, TokenVerifier, static_keys
from tests.support import bearer

KEY = Ed25519PrivateKey.generate()
SLOW = "/test.Slow/Call"
BROKEN = "/test.Slow/Broken"
ENDED = "/test.Slow/Ended"
# Answers as many bytes as the request names (in ASCII digits).
SIZED = "/test.Slow/Sized"
MIB = 1024 * 1024


def access_token() -> str:
    now = int(time.time())
    claims = {
        "iss": "iotsuite",
        "sub": "u",
        "typ": "access",
        "jti": "j",
        "iat": now,
        "exp": now + 60,
    }
    return jwt.encode(claims, KEY, algorithm="EdDSA", headers={"kid": "k"})


def register(server: grpc.aio.Server) -> list[str]:
    async def slow(request: bytes, context: Any) -> bytes:
        await asyncio.sleep(0.5)
        return b"done"

    async def broken(request: bytes, context: Any) -> bytes:
        raise RuntimeError("database password is hunter2")

    async def ended(request: bytes, context: Any) -> bytes:
        # What reading a stream raises when the server stops under the call.
        raise grpc.aio.UsageError("Server already stopped.")

    async def sized(request: bytes, context: Any) -> bytes:
        return b"x" * int(request)

    handlers = {
        "Sized": grpc.unary_unary_rpc_method_handler(sized),
        "Call": grpc.unary_unary_rpc_method_handler(slow),
        "Broken": grpc.unary_unary_rpc_method_handler(broken),
        "Ended": grpc.unary_unary_rpc_method_handler(ended),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Slow", handlers),))
    return []


@pytest.fixture
async def server():  # type: ignore[no-untyped-def]
    verifier = TokenVerifier(KeySet(static_keys([("k", KEY.public_key())])))
    built = build_server(service="test", register=register, verifier=verifier)
    await built.start()
    yield built
    await built.stop(0)


async def test_stop_reports_not_serving_and_drains_in_flight_calls(server) -> None:  # type: ignore[no-untyped-def]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        serving = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert serving.status == health_pb2.HealthCheckResponse.SERVING
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        call = channel.unary_unary(SLOW)(b"", metadata=bearer(access_token()))
        await asyncio.sleep(0.1)  # the call is now in flight
        stopping = asyncio.create_task(server.stop(5))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert await call == b"done"
        await stopping


async def test_unexpected_errors_are_internal_without_details(server, caplog) -> None:  # type: ignore[no-untyped-def]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary(BROKEN)(b"", metadata=bearer(access_token()))
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert caught.value.details() == "Internal error"
    assert reason_of(caught.value) == "INTERNAL"
    assert "hunter2" not in str(caught.value.trailing_metadata())
    assert any(r.exc_info for r in caplog.records)  # the traceback goes to the log instead


async def test_methods_without_rules_need_a_token(server) -> None:  # type: ignore[no-untyped-def]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary(SLOW)(b"")
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def service_token(scope: str) -> str:
    now = int(time.time())
    claims = {
        "iss": "iotsuite",
        "sub": "auth",
        "role": "service",
        "typ": "service",
        "scope": scope,
        "jti": "j",
        "iat": now,
        "exp": now + 60,
    }
    return jwt.encode(claims, KEY, algorithm="EdDSA", headers={"kid": "k"})


async def test_scopes_and_token_types_come_from_the_proto_rules(server) -> None:  # type: ignore[no-untyped-def]
    request = system_pb2.GetProcessStatusRequest()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        diagnostics = system_pb2_grpc.DiagnosticsServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as lacking:
            await diagnostics.GetProcessStatus(request, metadata=bearer(service_token("chat")))
        assert lacking.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert reason_of(lacking.value) == "MISSING_SCOPE"
        with pytest.raises(grpc.aio.AioRpcError) as wrong_type:
            await diagnostics.GetProcessStatus(request, metadata=bearer(access_token()))
        assert wrong_type.value.code() == grpc.StatusCode.UNAUTHENTICATED
        answer = await diagnostics.GetProcessStatus(
            request, metadata=bearer(service_token("system:read"))
        )
    assert answer.service == "test"
    assert answer.metrics.total_requests >= 2


async def test_a_call_ended_by_the_runtime_is_a_log_line_not_a_traceback(server, caplog) -> None:  # type: ignore[no-untyped-def]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary(ENDED)(b"", metadata=bearer(access_token()))
    assert caught.value.code() != grpc.StatusCode.OK
    ended = [r for r in caplog.records if r.getMessage() == "call ended by the gRPC runtime"]
    assert ended and ended[0].levelname == "WARNING"
    assert not any(r.exc_info for r in caplog.records if r.name.startswith("iotkit"))


async def test_a_session_token_waits_for_the_first_revocation_sync_then_is_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Until a process has read the revoked sessions once it cannot tell a revoked
    token from a live one: it answers UNAVAILABLE (503 at the gateway), not the call."""
    auth_up = False

    async def poll(cursor: Any) -> tuple[list[Revocation], Any]:
        if not auth_up:
            raise ConnectionError("auth is down")
        return [], "cursor"

    # The first sync is waited for briefly; the test need not wait the real while.
    monkeypatch.setattr(revocation, "FIRST_SYNC_WAIT", 0.05)
    follower = RevocationFollower(poll=poll, poll_interval=0.01)
    verifier = TokenVerifier(KeySet(static_keys([("k", KEY.public_key())])))
    built = build_server(
        service="test",
        register=register,
        verifier=verifier,
        session_check=follower.session_is_live,
    )
    await built.start()
    follower.start()
    token = jwt.encode(
        {**jwt.decode(access_token(), options={"verify_signature": False}), "sid": "s"},
        KEY,
        algorithm="EdDSA",
        headers={"kid": "k"},
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{built.port}") as channel:
            call = channel.unary_unary(SLOW)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(b"", metadata=bearer(token))
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert caught.value.details() == "Revoked sessions are not known yet; retry shortly"

            auth_up = True
            await follower.poll_once()
            # Synced, and the session is not revoked: the call is served.
            assert await call(b"", metadata=bearer(token)) == b"done"
    finally:
        await follower.stop()
        await built.stop(0)


async def test_messages_over_32_mib_are_refused_each_way_and_those_under_served(server) -> None:  # type: ignore[no-untyped-def]
    limit = 32 * MIB
    # The client takes more, so that only the server's limits are tried.
    options = [("grpc.max_receive_message_length", 2 * limit)]
    token = bearer(access_token())
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}", options=options) as channel:
        call = channel.unary_unary(SLOW)
        with pytest.raises(grpc.aio.AioRpcError) as asked:
            await call(b"x" * (limit + 1), metadata=token)
        assert asked.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # Far above gRPC's 4 MiB default, within the suite's limit.
        assert await call(b"x" * (limit - 1024), metadata=token) == b"done"

        sized = channel.unary_unary(SIZED)
        with pytest.raises(grpc.aio.AioRpcError) as answered:
            await sized(str(limit + 1).encode(), metadata=token)
        assert answered.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert len(await sized(str(limit - 1024).encode(), metadata=token)) == limit - 1024
