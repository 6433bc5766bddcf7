"""The suite's status over gRPC with all five services running, and token verification
in the services that fetch their keys from auth."""

from __future__ import annotations

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from iot.system.v1 import system_pb2, system_pb2_grpc
from iotkit.config import SERVICES
from tests.conftest import Suite
from tests.support import bearer


async def system_status(suite: Suite) -> system_pb2.SystemStatus:
    async with grpc.aio.insecure_channel(suite.address("auth")) as channel:
        return await system_pb2_grpc.SystemServiceStub(channel).GetSystemStatus(
            system_pb2.GetSystemStatusRequest()
        )


async def test_every_service_healthy(suite: Suite) -> None:
    status = await system_status(suite)
    assert status.status == "healthy"
    for name in (*SERVICES, "database", "storage", "email", "cache", "analytics_engine"):
        assert getattr(status.services, name) == "healthy", name
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
    from dataclasses import replace

    from tests.conftest import start_suite

    backend = replace(backend, settings=replace(backend.settings, redis_url=redis_url))
    running = await start_suite(backend)
    try:
        status = await system_status(running)
        assert status.services.cache == "healthy"
        assert {d.detail for d in status.dependencies if d.name == "cache"} == {"redis"}
    finally:
        for process in running.processes.values():
            await process.aclose(grace=0)


async def test_unreachable_redis_degrades_the_cache(backend) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from tests.conftest import start_suite
    from tests.support import free_port

    dead = f"redis://127.0.0.1:{free_port()}/0"
    backend = replace(backend, settings=replace(backend.settings, redis_url=dead))
    running = await start_suite(backend, ("auth",))
    try:
        status = await system_status(running)
        assert status.services.cache == "down"
        assert status.status == "degraded"
    finally:
        for process in running.processes.values():
            await process.aclose(grace=0)


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
    assert getattr(status.services, service) == "healthy"
    assert any(d.service == service and d.name == "database" for d in status.dependencies)
