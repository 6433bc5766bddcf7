"""The suite's status over gRPC with all five services running, and token verification
in the services that fetch their keys from auth."""

from __future__ import annotations

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from iot.system.v1 import system_pb2, system_pb2_grpc
from iotkit.config import SERVICES
from iotkit.process import build_service
from services.chat.wiring import MIGRATIONS as CHAT_MIGRATIONS
from tests.conftest import Backend, Suite, start_suite
from tests.support import bearer

# What every process serves besides its APIs: never counted as an API.
INFRASTRUCTURE = {
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "iot.system.v1.DiagnosticsService",
}


async def system_status(suite: Suite) -> system_pb2.SystemStatus:
    async with grpc.aio.insecure_channel(suite.address("auth")) as channel:
        return await system_pb2_grpc.SystemServiceStub(channel).GetSystemStatus(
            system_pb2.GetSystemStatusRequest()
        )


def expected_state(state: system_pb2.ServiceState) -> str:
    """A running service is healthy when it serves an API of its own, no_api otherwise."""
    return "healthy" if state.apis else "no_api"


async def test_every_service_healthy(suite: Suite) -> None:
    status = await system_status(suite)
    assert status.status == "healthy"
    for name in ("database", "storage", "email", "cache", "analytics_engine"):
        assert getattr(status.services, name) == "healthy", name
    assert [state.service for state in status.service_states] == list(SERVICES)
    for state in status.service_states:
        assert getattr(status.services, state.service) == state.status == expected_state(state)
        assert not INFRASTRUCTURE & set(state.apis), state.service
    apis = {state.service: set(state.apis) for state in status.service_states}
    assert {"iot.auth.v1.AuthService", "iot.system.v1.SystemService"} <= apis["auth"]
    assert "iot.devices.v1.DeviceService" in apis["devices"]
    assert "iot.telemetry.v1.TelemetryService" in apis["telemetry"]
    assert apis["chat"] == {"iot.chat.v1.ChatService"}
    assert all(state.status == "healthy" for state in status.service_states)
    assert "iot.analytics.v1.AnalyticsService" in apis["analytics"]
    assert status.database and status.storage and status.analytics_engine
    assert status.version
    checked = {(d.service, d.name) for d in status.dependencies}
    assert {(name, "database") for name in SERVICES} <= checked
    assert ("telemetry", "storage") in checked
    expected_db = "postgresql" if suite.settings.database_url else "sqlite"
    assert {d.detail for d in status.dependencies if d.name == "database"} == {expected_db}


async def test_request_metrics_count_calls(suite: Suite) -> None:
    first = await system_status(suite)
    second = await system_status(suite)
    # Each status call is itself counted, plus one diagnostics call per other service.
    assert second.metrics.total_requests >= first.metrics.total_requests + 1 + len(SERVICES) - 1
    assert second.metrics.error_rate == 0.0


async def test_a_stopped_service_is_down_and_the_suite_degraded(suite: Suite) -> None:
    await suite.stop("analytics")
    status = await system_status(suite)
    assert status.status == "degraded"
    assert status.services.analytics == "down"
    assert status.services.analytics_engine == "down"
    assert not status.analytics_engine
    assert status.services.devices == "healthy"


async def test_a_stopped_telemetry_takes_storage_down(suite: Suite) -> None:
    await suite.stop("telemetry")
    status = await system_status(suite)
    assert status.services.telemetry == "down"
    assert status.services.storage == "down" and not status.storage


async def test_redis_is_checked_when_configured(backend, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import start_suite

    running = await start_suite(backend, redis_url=redis_url)
    try:
        status = await system_status(running)
        assert status.services.cache == "healthy"
        assert {d.detail for d in status.dependencies if d.name == "cache"} == {"redis"}
    finally:
        await running.aclose()


async def test_unreachable_redis_degrades_the_cache(backend) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import free_port, start_suite

    dead = f"redis://127.0.0.1:{free_port()}/0"
    running = await start_suite(backend, ("auth",), redis_url=dead)
    try:
        status = await system_status(running)
        assert status.services.cache == "down"
        assert status.status == "degraded"
    finally:
        await running.aclose()


@pytest.mark.parametrize("service", [s for s in SERVICES if s != "auth"])
async def test_services_verify_tokens_with_keys_fetched_from_auth(
    suite: Suite, service: str
) -> None:
    async with grpc.aio.insecure_channel(suite.address(service)) as channel:
        stub = system_pb2_grpc.DiagnosticsServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as anonymous:
            await stub.GetProcessStatus(system_pb2.GetProcessStatusRequest())
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
        forged = jwt.encode(
            {
                "iss": "iotsuite",
                "sub": "auth",
                "typ": "service",
                "scope": "system:read",
                "jti": "x",
                "iat": 1,
                "exp": 4_000_000_000,
            },
            Ed25519PrivateKey.generate(),
            algorithm="EdDSA",
            headers={"kid": "made-up"},
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetProcessStatus(
                system_pb2.GetProcessStatusRequest(),
                metadata=bearer(forged),
            )
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # The genuine path: auth's aggregator reads every service's diagnostics with a token
    # those services verify with keys they fetched from auth.
    status = await system_status(suite)
    (state,) = [s for s in status.service_states if s.service == service]
    assert getattr(status.services, service) == state.status == expected_state(state)
    assert any(d.service == service and d.name == "database" for d in status.dependencies)


async def test_a_service_that_serves_no_api_of_its_own_is_no_api_not_healthy(
    backend: Backend,
) -> None:
    # A bare process (here in chat's place): health, reflection and diagnostics only.
    running = await start_suite(backend, tuple(name for name in SERVICES if name != "chat"))
    bare = await build_service(
        running.settings,
        history=CHAT_MIGRATIONS,
        address=running.address("chat"),
        schema=backend.schema("chat"),
    )
    await bare.built.start()
    running.processes["chat"] = bare
    try:
        status = await system_status(running)
        states = {state.service: state for state in status.service_states}
        assert status.services.chat == states["chat"].status == "no_api"
        assert list(states["chat"].apis) == []
        assert states["chat"].message == "Serves no API of its own (only health and diagnostics)"
        assert any(d.service == "chat" and d.name == "database" for d in status.dependencies)
        # Nothing is lost while it serves nothing: the suite stays healthy.
        assert status.status == "healthy"
        for name in SERVICES:
            if name != "chat":
                assert states[name].status == "healthy" and states[name].apis, name
                assert states[name].message == ""
        await running.stop("chat")
        gone = await system_status(running)
        (chat,) = [state for state in gone.service_states if state.service == "chat"]
        assert (chat.status, gone.services.chat, gone.status) == ("down", "down", "degraded")
        assert chat.message == "Not reachable or not serving"
    finally:
        await running.aclose()
